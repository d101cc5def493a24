"""A tagger's part of the model card and of the version's description: entity F1 against the CRF and memorization,
per type, the gate's frozen sentences, and sample sentences gold vs predicted."""

from __future__ import annotations

from core import reporting
from core.registry_names import SERVED_ENTITY_F1, SERVED_RUNTIME
from core.tracking import Tracking
from tasks.judging.report_rows import rule_rows
from tasks.kinds.entities.evaluation import evaluation_rows
from tasks.registry.card_parts import CARD_SAMPLES, data_lines, where_served
from tasks.results.entities import EntityReport, PreparedEntities
from tasks.results.registry import GateVerdict, RegisteredModel


def _verdict_rows(verdict: GateVerdict) -> list[dict]:
    scores = {"challenger": verdict.challenger, "champion": verdict.champion, "CRF": verdict.baseline}
    return [
        {"model": who, "precision": round(s.precision, 4), "recall": round(s.recall, 4), "f1": round(s.f1, 4)}
        for who, s in scores.items()
        if s is not None
    ]


def card_sections(data: PreparedEntities, report: EntityReport, verdict: GateVerdict) -> list[str]:
    """Data, the tagger against its baselines and per type, the gate's frozen set, and sample sentences."""
    sizes = [{"split": k, "sentences": v} for k, v in data.sizes.items()]
    per_type = [{"type": t, "f1": f1} for t, f1 in report.model.per_type.items()]
    return [
        *data_lines(data, f" ({data.scheme} tags, read as IOB2), types: {', '.join(data.types)}"),
        reporting.md_table(sizes),
        "",
        'Call it: `model.predict(pd.DataFrame({"text": [...]}))`: one row per text, its `entities` '
        "(type, start, end, text, score).",
        "",
        f"## Metrics vs baselines (newest test split, {report.test_size} sentences, strict entity match)",
        "",
        reporting.md_table(evaluation_rows(report)),
        "",
        reporting.md_table(per_type),
        "",
        f"## Against the previous champion (frozen set, {verdict.eval_size} sentences {verdict.eval_sources})",
        "",
        reporting.md_table(_verdict_rows(verdict)),
        "",
        f"## Sample sentences (first {CARD_SAMPLES} test sentences with entities)",
        "",
        reporting.md_table(report.samples[:CARD_SAMPLES]),
        "",
    ]


def card_numbers(
    registered: RegisteredModel, report: EntityReport, verdict: GateVerdict, tracking: Tracking
) -> tuple[str, str]:
    """The gate's rules and one line on the newest test split."""
    m = report.model
    line = (
        f"Newest test split ({report.test_size} sentences): entity F1 {m.f1:.4f} (precision {m.precision:.4f}, "
        f"recall {m.recall:.4f}); CRF {report.crf.f1:.4f}; the gate judged {verdict.eval_size} frozen sentences."
    )
    return reporting.md_table(rule_rows(verdict.rules)), line


def served_numbers(tags: dict[str, str], report: EntityReport) -> str:
    """What the service answers with and its entity F1 beside PyTorch's."""
    if (runtime := tags.get(SERVED_RUNTIME)) is None:
        return ""
    return where_served(
        runtime, f"entity F1 {tags.get(SERVED_ENTITY_F1)} (PyTorch {report.model.f1:.4f} on the whole test split)", tags
    )


def card_figure(registered: RegisteredModel, tracking: Tracking) -> str:
    """A tagger's card has no figure: the sample sentences are in the sections."""
    return ""
