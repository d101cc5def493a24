"""A classifier's part of the model card and of the version's description: macro-F1 / accuracy against TF-IDF and
the majority class, the gate's frozen set, the confusion matrix."""

from __future__ import annotations

from core import reporting
from core.registry_names import COMPRESSION, SERVED_MACRO_F1, SERVED_RUNTIME
from core.tracking import Tracking
from tasks.judging.report_rows import evaluation_rows, verdict_rows
from tasks.kinds.classification.registry import CONFUSION_PNG
from tasks.kinds.classification.truncation_report import truncation_line
from tasks.registry.card_parts import data_lines, where_served
from tasks.results.classification import EvalReport
from tasks.results.data import PreparedData
from tasks.results.registry import GateVerdict, RegisteredModel


def card_sections(data: PreparedData, report: EvalReport, verdict: GateVerdict) -> list[str]:
    """Data, the model against TF-IDF and the majority class, and the gate's frozen set: a classifier's numbers."""
    sizes = [{"split": k, "texts": v} for k, v in data.sizes.items()] + [{"split": "corpus", "texts": data.corpus_size}]
    return [
        *data_lines(data, f", labels: {', '.join(data.labels)}"),
        reporting.md_table(sizes),
        "",
        f"## Metrics vs baselines (newest test split, {report.test_size} texts)",
        "",
        reporting.md_table(evaluation_rows(report)),
        "",
        truncation_line(report),
        "",
        f"## Against the previous champion (frozen set, {verdict.eval_size} texts {verdict.eval_sources})",
        "",
        reporting.md_table(verdict_rows(verdict)),
        "",
    ]


def card_numbers(
    registered: RegisteredModel, report: EvalReport, verdict: GateVerdict, tracking: Tracking
) -> tuple[str, str]:
    """The gate's table and one line on the newest test split, with a link to the confusion matrix."""
    line = (
        f"Newest test split ({report.test_size} texts): macro-F1 {report.model.macro_f1:.4f}, "
        f"accuracy {report.model.accuracy:.4f}; the table above is the gate's frozen set of "
        f"{verdict.eval_size} texts. [Confusion matrix]({tracking.artifact_url(registered.run_id, CONFUSION_PNG)})"
    )
    return reporting.md_table(verdict_rows(verdict, report)), line


def served_numbers(tags: dict[str, str], report: EvalReport) -> str:
    """What the service answers with and its test macro-F1 beside PyTorch's."""
    if (runtime := tags.get(SERVED_RUNTIME)) is None:  # registered before the tag existed
        return ""
    served = where_served(runtime, f"macro-F1 {tags.get(SERVED_MACRO_F1)} (PyTorch {report.model.macro_f1:.4f})", tags)
    return served + (f" Compressed ({tags[COMPRESSION]})." if COMPRESSION in tags else "")


def card_figure(registered: RegisteredModel, tracking: Tracking) -> str:
    """The confusion matrix under the card."""
    return f"\n![Confusion matrix on the test split]({tracking.artifact_url(registered.run_id, CONFUSION_PNG)})\n"
