"""What both gates share around their rules: the verdict with its frozen rows, the gate's MLflow run, and the
verdict's tags on the model version and on the run that logged it.

`tasks/judging/gate.py` (classifiers) and `tasks/kinds/generation/gate.py` (generators) record their verdicts through
here, so the two gates do not import each other.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from core.storage import publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace, exists, join
from tasks.results.registry import GateVerdict, RegisteredModel
from tasks.results.scores import RuleResult


def freeze(rows: pd.DataFrame, uri: str) -> str:
    """Keep the exact rows (content-addressed) so the comparison can be re-run later."""
    if not exists(join(uri, "eval.parquet")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.to_parquet(Path(tmp, "eval.parquet"), index=False)
            publish_dir(Path(tmp), uri)
    return uri


def new_verdict(
    registered: RegisteredModel,
    champion: ModelVersion | None,
    rules: list[RuleResult],
    metric: str,
    scores: dict,
    baseline: str,
    rows: pd.DataFrame,
    fingerprint: str,
    sources: dict[str, int],
    ws: Workspace,
) -> GateVerdict:
    """The verdict from the `rules` and the `scores` of challenger, champion and `baseline` (who in `scores` it is),
    with the frozen `rows` kept under their `fingerprint`. Its MLflow run is set by `record_verdict`."""
    return GateVerdict(
        model=registered.name,
        version=registered.version,
        champion_version=str(champion.version) if champion else None,
        passed=all(r.passed for r in rules),
        rules=rules,
        metric=metric,
        challenger=scores["challenger"],
        champion=scores.get("champion"),
        baseline=scores.get(baseline),
        eval_size=len(rows),
        eval_sources=sources,
        eval_fingerprint=fingerprint,
        eval_uri=freeze(rows, ws.uri("gate", fingerprint)),
        mlflow_run_id="",
    )


def tag_version(client: MlflowClient, registered: RegisteredModel, tags: dict[str, str]) -> None:
    """The same tags on the version and on the run that logged it: whoever looks at the model sees why."""
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)


def record_verdict(
    verdict: GateVerdict,
    scores: dict,
    registered: RegisteredModel,
    tracking: Tracking,
    parent_run_id: str | None,
) -> None:
    """Log the verdict as the gate's MLflow run (metrics, tags, verdict.json) and tag the version with it.

    Sets `verdict.mlflow_run_id`. `scores` maps who (challenger, champion, baseline or retrieval) to its scores.
    """
    metric = verdict.metric
    with stage_run(tracking, "gate", parent_run_id, {"zero2one.model_version": registered.version}) as run:
        verdict.mlflow_run_id = run.info.run_id
        mlflow.log_metrics({f"{who}_{metric}": getattr(s, metric) for who, s in scores.items()})
        mlflow.set_tags(verdict.tags())
        mlflow.log_dict(verdict.model_dump(mode="json"), "gate/verdict.json")
    client = tracking.client()
    tag_version(client, registered, verdict.tags())
    client.log_metric(registered.run_id, f"gate_{metric}", getattr(verdict.challenger, metric))
