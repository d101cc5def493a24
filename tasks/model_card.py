"""The model card: one markdown page per registered version that says what it is and where it came from.

Logged as `model_card.md` on the version's MLflow run and shown as a Prefect artifact, so a
reviewer deciding on a promotion reads data, numbers, gate verdict and lineage in one place.
"""

from __future__ import annotations

import yaml

from tasks import reporting
from tasks.artifacts import EvalReport, GateVerdict, PreparedData, RegisteredModel
from tasks.classifier_registry import CONFUSION_PNG
from tasks.registry_names import (
    LINEAGE_BASE_MODEL,
    LINEAGE_CHECKPOINT_URI,
    LINEAGE_CODE_VERSION,
    LINEAGE_CONFIG_HASH,
    LINEAGE_EVAL_RUN,
    LINEAGE_FINETUNE_RUN,
    LINEAGE_FLOW_RUN,
    LINEAGE_PRETRAIN_RUN,
    read_tag,
)
from tasks.report_rows import evaluation_rows, rule_rows, verdict_rows
from tasks.tracking import Tracking, prefect_run_url

CARD_PATH = "model_card.md"


def write_model_card(
    config: dict,
    data: PreparedData,
    registered: RegisteredModel,
    report: EvalReport,
    verdict: GateVerdict,
    tracking: Tracking,
) -> str:
    """Render the card, log it on the version's run, and return its artifact URI."""
    card = render(config, data, registered, report, verdict)
    client = tracking.client()
    client.log_text(registered.run_id, card, CARD_PATH)
    summary = description(registered, report, verdict, tracking)
    client.update_model_version(registered.name, registered.version, description=summary)
    png = tracking.artifact_url(registered.run_id, CONFUSION_PNG)
    reporting.markdown(
        "model-card",
        f"{card}\n![Confusion matrix on the test split]({png})\n",
        description=f"Model card of {registered.name} v{registered.version}",
    )
    return f"runs:/{registered.run_id}/{CARD_PATH}"


def description(registered: RegisteredModel, report: EvalReport, verdict: GateVerdict, tracking: Tracking) -> str:
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
    return (
        f"{head}\n\n"
        f"{reporting.md_table(verdict_rows(verdict, report))}\n\n"
        f"Newest test split ({report.test_size} texts): macro-F1 {report.model.macro_f1:.4f}, "
        f"accuracy {report.model.accuracy:.4f}; the table above is the gate's frozen set of "
        f"{verdict.eval_size} texts. [Confusion matrix]({tracking.artifact_url(registered.run_id, CONFUSION_PNG)})"
        f"\n\nRuns: {' · '.join(links)}. Model card: `{CARD_PATH}` in the version's run."
    )


def render(
    config: dict, data: PreparedData, registered: RegisteredModel, report: EvalReport, verdict: GateVerdict
) -> str:
    tags = registered.tags
    gate = "passed" if verdict.passed else "failed: " + "; ".join(verdict.reasons)
    sizes = [{"split": k, "texts": v} for k, v in data.sizes.items()] + [{"split": "corpus", "texts": data.corpus_size}]
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
            "",
            "## Data",
            "",
            f"- source: `{data.source}`, labels: {', '.join(data.labels)}",
            f"- fingerprint: `{data.fingerprint}` at `{data.uri}`",
            f"- dropped: {data.dropped or 'nothing'}",
            "",
            reporting.md_table(sizes),
            "",
            f"## Metrics vs baselines (newest test split, {report.test_size} texts)",
            "",
            reporting.md_table(evaluation_rows(report)),
            "",
            f"## Against the previous champion (frozen set, {verdict.eval_size} texts {verdict.eval_sources})",
            "",
            reporting.md_table(verdict_rows(verdict)),
            "",
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
