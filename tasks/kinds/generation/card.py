"""A generator's part of the model card and of the version's description: perplexity, exact match and chrF against
the model before instruction tuning and retrieval, the gate's frozen prompts, and sample answers."""

from __future__ import annotations

from core import reporting
from core.registry_names import SERVED_CHRF, SERVED_EXACT_MATCH, SERVED_RUNTIME
from core.tracking import Tracking
from tasks.judging.report_rows import generation_rows, generation_verdict_rows
from tasks.registry.card_parts import CARD_SAMPLES, data_lines, where_served
from tasks.results.data import ArrowSplits
from tasks.results.generation import GenerationReport
from tasks.results.registry import GateVerdict, RegisteredModel


def card_sections(data: ArrowSplits, report: GenerationReport, verdict: GateVerdict) -> list[str]:
    """Data, the model against the model before SFT and retrieval, the gate's frozen prompts and sample answers."""
    sizes = [{"split": k, "chats": v} for k, v in data.sizes.items()]
    sizes += [{"split": f"corpus {k}", "chats": v} for k, v in getattr(data, "corpus_sizes", {}).items()]
    return [
        *data_lines(data, " (instruction chats)"),
        reporting.md_table(sizes),
        "",
        'Call it: `model.predict(pd.DataFrame({"prompt": [...]}), params={"max_new_tokens": 64, "temperature": 0.0})`'
        " (or a `messages` column of `{role, content}` lists); `zero2one predict PROMPT ...` does the same.",
        "",
        f"## Metrics vs baselines (newest test split, {report.test_size} prompts, greedy)",
        "",
        reporting.md_table(generation_rows(report)),
        "",
        f"## Against the previous champion (frozen prompts, {verdict.eval_size} {verdict.eval_sources})",
        "",
        reporting.md_table(generation_verdict_rows(verdict)),
        "",
        f"## Sample answers (first {CARD_SAMPLES} test prompts)",
        "",
        reporting.md_table(report.samples[:CARD_SAMPLES]),
        "",
    ]


def card_numbers(
    registered: RegisteredModel, report: GenerationReport, verdict: GateVerdict, tracking: Tracking
) -> tuple[str, str]:
    """The gate's table and one line on the newest test split, in chrF, exact match and perplexity."""
    m = report.model
    perplexity = "" if m.perplexity is None else f", perplexity {m.perplexity:.3f}"
    line = (
        f"Newest test split ({report.test_size} prompts): chrF {m.chrf:.2f}, exact match {m.exact_match:.4f}"
        f"{perplexity}; retrieval chrF {report.retrieval.chrf:.2f}; the table above is the gate's frozen set of "
        f"{verdict.eval_size} prompts."
    )
    return reporting.md_table(generation_verdict_rows(verdict)), line


def served_numbers(tags: dict[str, str], report: GenerationReport) -> str:
    """What the service answers with and its test chrF and exact match beside PyTorch's."""
    if (runtime := tags.get(SERVED_RUNTIME)) is None:  # registered before the tag existed
        return ""
    numbers = f"chrF {tags.get(SERVED_CHRF)} (PyTorch {report.model.chrf:.4f}), exact match "
    numbers += f"{tags.get(SERVED_EXACT_MATCH)} (PyTorch {report.model.exact_match:.4f})"
    return where_served(runtime, numbers, tags)


def card_figure(registered: RegisteredModel, tracking: Tracking) -> str:
    """A generator's card has no figure: its sample answers are in the sections."""
    return ""
