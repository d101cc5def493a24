"""The share of test texts a classifier saw cut: one sentence for the evaluation summary and the model card.

Long texts lose words to the model's window (`finetune.max_length`, `finetune.truncation`); a reader of the numbers
should know how many of the scored texts were cut, and how.
"""

from __future__ import annotations

from tasks.results.classification import EvalReport


def truncation_line(report: EvalReport) -> str:
    """One sentence for the summary and the model card: the share of test texts longer than the model's window."""
    if report.truncated is None:
        return ""
    share = report.truncated / report.test_size if report.test_size else 0.0
    return (
        f"Long texts: {report.truncated} of {report.test_size} test texts ({share:.1%}) were longer than the "
        f"model's window and were cut ({report.truncation})."
    )
