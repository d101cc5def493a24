"""The model card: one markdown page per registered version that says what it is and where it came from.

Logged as `model_card.md` on the version's MLflow run and shown as a Prefect artifact, so a
reviewer deciding on a promotion reads data, numbers, gate verdict and lineage in one place.
"""

from __future__ import annotations

import yaml

from tasks import reporting
from tasks.data import PreparedData
from tasks.evaluate import EvalReport
from tasks.evaluate import comparison_rows as baseline_rows
from tasks.gate import GateVerdict, comparison_rows, rule_rows
from tasks.register import RegisteredModel
from tasks.tracking import Tracking

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
    metric = verdict.metric
    summary = f"Gate {'passed' if verdict.passed else 'failed'}: {metric} {getattr(verdict.challenger, metric):.4f}"
    summary += f" on {verdict.eval_size} frozen texts"
    if verdict.champion:
        summary += f" (champion v{verdict.champion_version}: {getattr(verdict.champion, metric):.4f})"
    summary += f". Model card: {CARD_PATH} in run {registered.run_id}."
    client.update_model_version(registered.name, registered.version, description=summary)
    reporting.markdown("model-card", card, description=f"Model card of {registered.name} v{registered.version}")
    return f"runs:/{registered.run_id}/{CARD_PATH}"


def render(
    config: dict, data: PreparedData, registered: RegisteredModel, report: EvalReport, verdict: GateVerdict
) -> str:
    tags = registered.tags
    gate = "passed" if verdict.passed else "failed: " + "; ".join(verdict.reasons)
    sizes = [{"split": k, "texts": v} for k, v in data.sizes.items()] + [{"split": "corpus", "texts": data.corpus_size}]
    lineage = {
        "pretraining run": tags.get("zero2one.pretrain_run_id", "none"),
        "fine-tuning run": tags.get("zero2one.finetune_run_id", "none"),
        "evaluation run": tags.get("zero2one.eval_run_id", "none"),
        "gate run": verdict.mlflow_run_id,
        "parent version (champion at the gate)": f"v{verdict.champion_version}" if verdict.champion_version else "none",
        "base model": tags.get("zero2one.base_model", "none"),
        "checkpoint": tags.get("zero2one.checkpoint_uri", "none"),
        "Prefect flow run": tags.get("prefect.flow_run_id", "none"),
        "code version": tags.get("zero2one.code_version", "none"),
        "config hash": tags.get("zero2one.config_hash", "none"),
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
            reporting.md_table(baseline_rows(report)),
            "",
            f"## Against the previous champion (frozen set, {verdict.eval_size} texts {verdict.eval_sources})",
            "",
            reporting.md_table(comparison_rows(verdict)),
            "",
            "## Gate rules",
            "",
            reporting.md_table(rule_rows(verdict)),
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
