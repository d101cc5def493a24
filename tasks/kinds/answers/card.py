"""A question answerer's part of the model card and of the version's description: exact match and F1 against the
lexical baseline (and the untrained head), the gate's frozen questions, and sample questions gold vs predicted."""

from __future__ import annotations

from core import reporting
from core.registry_names import SERVED_ANSWER_F1, SERVED_RUNTIME
from core.tracking import Tracking
from tasks.judging.report_rows import rule_rows
from tasks.kinds.answers.evaluation import evaluation_rows
from tasks.registry.card_parts import CARD_SAMPLES, data_lines, where_served
from tasks.results.answers import AnswersReport, PreparedQuestions
from tasks.results.registry import GateVerdict, RegisteredModel

SCORING = {"squad": "SQuAD v1.1 normalisation", "cmrc": "CMRC 2018 character-level"}


def _verdict_rows(verdict: GateVerdict) -> list[dict]:
    scores = {"challenger": verdict.challenger, "champion": verdict.champion, "lexical": verdict.baseline}
    return [
        {"model": who, "exact_match": round(s.exact_match, 4), "f1": round(s.f1, 4)}
        for who, s in scores.items()
        if s is not None
    ]


def card_sections(data: PreparedQuestions, report: AnswersReport, verdict: GateVerdict) -> list[str]:
    """Data, the reader against its baselines, the gate's frozen set, and sample questions."""
    sizes = [
        {"split": k, "questions": v, "articles": data.articles[k], "no_answer": data.no_answer[k]}
        for k, v in data.sizes.items()
    ]
    repaired = f", {data.repaired} answer_starts repaired" if data.repaired else ""
    return [
        *data_lines(data, f" ({data.language}, split by article{repaired})"),
        reporting.md_table(sizes),
        "",
        'Call it: `model.predict(pd.DataFrame([{"question": ..., "context": ...}]))`: one row per question, its '
        "`answer`, `start`, `end` (character offsets into the context), `score` and `no_answer`.",
        "",
        f"## Metrics vs baselines (newest test split, {report.test_size} questions, {SCORING[report.scoring]})",
        "",
        reporting.md_table(evaluation_rows(report)),
        "",
        f"## Against the previous champion (frozen set, {verdict.eval_size} questions {verdict.eval_sources})",
        "",
        reporting.md_table(_verdict_rows(verdict)),
        "",
        f"## Sample questions (first {CARD_SAMPLES} test questions)",
        "",
        reporting.md_table(report.samples[:CARD_SAMPLES]),
        "",
    ]


def card_numbers(
    registered: RegisteredModel, report: AnswersReport, verdict: GateVerdict, tracking: Tracking
) -> tuple[str, str]:
    """The gate's rules and one line on the newest test split."""
    m = report.model
    line = (
        f"Newest test split ({report.test_size} questions): answer F1 {m.f1:.4f}, exact match {m.exact_match:.4f}; "
        f"lexical baseline F1 {report.lexical.f1:.4f}; the gate judged {verdict.eval_size} frozen questions."
    )
    return reporting.md_table(rule_rows(verdict.rules)), line


def served_numbers(tags: dict[str, str], report: AnswersReport) -> str:
    """What the service answers with and its F1 beside PyTorch's."""
    if (runtime := tags.get(SERVED_RUNTIME)) is None:
        return ""
    return where_served(
        runtime, f"answer F1 {tags.get(SERVED_ANSWER_F1)} (PyTorch {report.model.f1:.4f} on the whole test split)", tags
    )


def card_figure(registered: RegisteredModel, tracking: Tracking) -> str:
    """A reader's card has no figure: the sample questions are in the sections."""
    return ""
