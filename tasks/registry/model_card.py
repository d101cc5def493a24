"""The model card: one markdown page per registered version that says what it is and where it came from.

Logged as `model_card.md` on the version's MLflow run and shown as a Prefect artifact, so a
reviewer deciding on a promotion reads data, numbers, gate verdict and lineage in one place. One card for both
tracks: a classifier's shows macro-F1 / accuracy against TF-IDF and the majority class; a generator's shows
perplexity, exact match and chrF against the model before instruction tuning and retrieval, and sample answers.
"""

from __future__ import annotations

import yaml

from core import reporting
from core.registry_names import (
    LINEAGE_BASE_MODEL,
    LINEAGE_CHECKPOINT_URI,
    LINEAGE_CODE_VERSION,
    LINEAGE_CONFIG_HASH,
    LINEAGE_EVAL_RUN,
    LINEAGE_FINETUNE_RUN,
    LINEAGE_FLOW_RUN,
    LINEAGE_PRETRAIN_RUN,
    SERVED_CHRF,
    SERVED_EXACT_MATCH,
    SERVED_MACRO_F1,
    SERVED_RUNTIME,
    read_tag,
)
from core.tracking import Tracking, prefect_run_url
from tasks.judging.report_rows import evaluation_rows, generation_rows, generation_verdict_rows, rule_rows, verdict_rows
from tasks.kinds.classification.registry import CONFUSION_PNG
from tasks.kinds.classification.truncation_report import truncation_line
from tasks.results import ArrowSplits, EvalReport, GateVerdict, GenerationReport, PreparedData, RegisteredModel

CARD_PATH = "model_card.md"
CARD_SAMPLES = 5  # sample answers on a generator's card (all of them are in the evaluation run)


def write_model_card(
    config: dict,
    data: ArrowSplits,
    registered: RegisteredModel,
    report: EvalReport | GenerationReport,
    verdict: GateVerdict,
    tracking: Tracking,
) -> str:
    """Render the card, log it on the version's run, and return its artifact URI."""
    card = render(config, data, registered, report, verdict)
    client = tracking.client()
    client.log_text(registered.run_id, card, CARD_PATH)
    summary = description(registered, report, verdict, tracking)
    client.update_model_version(registered.name, registered.version, description=summary)
    if isinstance(report, EvalReport):
        card += f"\n![Confusion matrix on the test split]({tracking.artifact_url(registered.run_id, CONFUSION_PNG)})\n"
    reporting.markdown("model-card", card, description=f"Model card of {registered.name} v{registered.version}")
    return f"runs:/{registered.run_id}/{CARD_PATH}"


def _numbers(registered: RegisteredModel, report: EvalReport | GenerationReport, verdict: GateVerdict, tracking):
    """The gate's table and one line on the newest test split, in the track's own metrics."""
    if isinstance(report, GenerationReport):
        m = report.model
        perplexity = "" if m.perplexity is None else f", perplexity {m.perplexity:.3f}"
        line = (
            f"Newest test split ({report.test_size} prompts): chrF {m.chrf:.2f}, exact match {m.exact_match:.4f}"
            f"{perplexity}; retrieval chrF {report.retrieval.chrf:.2f}; the table above is the gate's frozen set of "
            f"{verdict.eval_size} prompts."
        )
        return reporting.md_table(generation_verdict_rows(verdict)), line
    line = (
        f"Newest test split ({report.test_size} texts): macro-F1 {report.model.macro_f1:.4f}, "
        f"accuracy {report.model.accuracy:.4f}; the table above is the gate's frozen set of "
        f"{verdict.eval_size} texts. [Confusion matrix]({tracking.artifact_url(registered.run_id, CONFUSION_PNG)})"
    )
    return reporting.md_table(verdict_rows(verdict, report)), line


def description(
    registered: RegisteredModel, report: EvalReport | GenerationReport, verdict: GateVerdict, tracking: Tracking
) -> str:
    """The version's description in the MLflow UI (markdown): the verdict first, the numbers, links to the runs."""
    tags = registered.tags
    if verdict.passed:
        head = f"**Gate passed**: {verdict.headline.removeprefix('passed: ')}"
    else:
        head = "**Refused by the gate**" + "".join(f"\n- {r}" for r in verdict.reasons)
    runs = {
        "fine-tuning": read_tag(tags, LINEAGE_FINETUNE_RUN),
        "evaluation": read_tag(tags, LINEAGE_EVAL_RUN),
        "gate": verdict.mlflow_run_id,
        "this version (model card)": registered.run_id,
    }
    links = [f"[{what}]({tracking.run_url(rid)})" for what, rid in runs.items() if rid and rid != "none"]
    if (flow_run := read_tag(tags, LINEAGE_FLOW_RUN)) and flow_run != "none":
        links.append(f"[Prefect flow run]({prefect_run_url(flow_run)})")
    table, line = _numbers(registered, report, verdict, tracking)
    line += served_line(tags, report)
    return f"{head}\n\n{table}\n\n{line}\n\nRuns: {' · '.join(links)}. Model card: `{CARD_PATH}` in the version's run."


def served_line(tags: dict[str, str], report: EvalReport | GenerationReport) -> str:
    """What the service answers with and its test score beside PyTorch's (which every other number here is)."""
    runtime = tags.get(SERVED_RUNTIME)
    if runtime is None:  # registered before the tag existed
        return ""
    if isinstance(report, GenerationReport):
        numbers = f"chrF {tags.get(SERVED_CHRF)} (PyTorch {report.model.chrf:.4f}), exact match "
        numbers += f"{tags.get(SERVED_EXACT_MATCH)} (PyTorch {report.model.exact_match:.4f})"
    else:
        numbers = f"macro-F1 {tags.get(SERVED_MACRO_F1)} (PyTorch {report.model.macro_f1:.4f})"
    where = "the same test rows" if runtime == "pytorch" else "the optimize stage's parity run on the test split"
    return f"\n\nWhat serves: served ({runtime}) {numbers}, on {where}."


def render(
    config: dict,
    data: ArrowSplits,
    registered: RegisteredModel,
    report: EvalReport | GenerationReport,
    verdict: GateVerdict,
) -> str:
    tags = registered.tags
    gate = "passed" if verdict.passed else "failed: " + "; ".join(verdict.reasons)
    lineage = {
        "pretraining run": read_tag(tags, LINEAGE_PRETRAIN_RUN, "none"),
        "fine-tuning run": read_tag(tags, LINEAGE_FINETUNE_RUN, "none"),
        "evaluation run": read_tag(tags, LINEAGE_EVAL_RUN, "none"),
        "gate run": verdict.mlflow_run_id,
        "parent version (champion at the gate)": f"v{verdict.champion_version}" if verdict.champion_version else "none",
        "base model": read_tag(tags, LINEAGE_BASE_MODEL, "none"),
        "checkpoint": read_tag(tags, LINEAGE_CHECKPOINT_URI, "none"),
        "Prefect flow run": read_tag(tags, LINEAGE_FLOW_RUN, "none"),
        "code version": read_tag(tags, LINEAGE_CODE_VERSION, "none"),
        "config hash": read_tag(tags, LINEAGE_CONFIG_HASH, "none"),
    }
    return "\n".join(
        [
            f"# {registered.name} v{registered.version}",
            "",
            f"Gate: **{gate}**  ",
            f'Load it: `mlflow.pyfunc.load_model("{registered.model_uri}")`',
            served_line(tags, report).strip(),
            "",
            *(
                _generation_sections(data, report, verdict)
                if isinstance(report, GenerationReport)
                else _classification_sections(data, report, verdict)
            ),
            "## Gate rules",
            "",
            reporting.md_table(rule_rows(verdict.rules)),
            "",
            "## Lineage",
            "",
            *[f"- {k}: `{v}`" for k, v in lineage.items()],
            "",
            "## Config",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False).rstrip(),
            "```",
            "",
        ]
    )


def _data_lines(data: ArrowSplits, what: str) -> list[str]:
    return [
        "## Data",
        "",
        f"- source: `{data.source}`{what}",
        f"- fingerprint: `{data.fingerprint}` at `{data.uri}`",
        f"- dropped: {data.dropped or 'nothing'}",
        "",
    ]


def _classification_sections(data: PreparedData, report: EvalReport, verdict: GateVerdict) -> list[str]:
    """Data, the model against TF-IDF and the majority class, and the gate's frozen set: a classifier's numbers."""
    sizes = [{"split": k, "texts": v} for k, v in data.sizes.items()] + [{"split": "corpus", "texts": data.corpus_size}]
    return [
        *_data_lines(data, f", labels: {', '.join(data.labels)}"),
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


def _generation_sections(data: ArrowSplits, report: GenerationReport, verdict: GateVerdict) -> list[str]:
    """Data, the model against the model before SFT and retrieval, the gate's frozen prompts and sample answers."""
    sizes = [{"split": k, "chats": v} for k, v in data.sizes.items()]
    sizes += [{"split": f"corpus {k}", "chats": v} for k, v in getattr(data, "corpus_sizes", {}).items()]
    return [
        *_data_lines(data, " (instruction chats)"),
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
