"""The model card: one markdown page per registered version that says what it is and where it came from.

Logged as `model_card.md` on the version's MLflow run and shown as a Prefect artifact, so a
reviewer deciding on a promotion reads data, numbers, gate verdict and lineage in one place. One card for every
model kind: lineage, gate rules and config are the same; the data and numbers sections are the kind's own
(`ModelKind.card_sections`: `tasks/kinds/<kind>/card.py`).
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
    read_tag,
)
from core.tracking import Tracking, prefect_run_url
from tasks.judging.report_rows import rule_rows
from tasks.kinds.registry import kind_of
from tasks.results.classification import EvalReport
from tasks.results.data import ArrowSplits
from tasks.results.generation import GenerationReport
from tasks.results.registry import GateVerdict, RegisteredModel

CARD_PATH = "model_card.md"


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
    card += kind_of(report).card_figure(registered, tracking)
    reporting.markdown("model-card", card, description=f"Model card of {registered.name} v{registered.version}")
    return f"runs:/{registered.run_id}/{CARD_PATH}"


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
    kind = kind_of(report)
    table, line = kind.card_numbers(registered, report, verdict, tracking)
    line += kind.served_numbers(tags, report)
    return f"{head}\n\n{table}\n\n{line}\n\nRuns: {' · '.join(links)}. Model card: `{CARD_PATH}` in the version's run."


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
            kind_of(report).served_numbers(tags, report).strip(),
            "",
            *kind_of(report).card_sections(data, report, verdict),
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
