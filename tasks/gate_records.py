"""What a gate verdict leaves behind, for both tracks: the frozen rows, the gate's MLflow run, and the verdict's
tags on the model version and on the run that logged it.

`tasks/gate.py` (classifiers) and `tasks/gate_generation.py` (generators) record their verdicts through here, so
the two gates do not import each other.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tasks.artifacts import GateVerdict, RegisteredModel
from tasks.storage import publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import exists, join


def freeze(rows: pd.DataFrame, uri: str) -> str:
    """Keep the exact rows (content-addressed) so the comparison can be re-run later."""
    if not exists(join(uri, "eval.parquet")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.to_parquet(Path(tmp, "eval.parquet"), index=False)
            publish_dir(Path(tmp), uri)
    return uri


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
