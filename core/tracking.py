"""MLflow runs for stages, and the Prefect context they are tagged with.

Each stage logs to its own MLflow run, nested under the flow's pipeline run, tagged with the
Prefect flow run id - so one can go from the Prefect UI to the numbers and back.

`flow_run_id` (which Prefect flow run this is) is in `core/run_context.py`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import mlflow
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.orphans import mark_orphans, process_tags
from core.run_context import flow_run_id
from core.workspace import Workspace


class TrackingConfig(BaseModel):
    """Where MLflow lives. By default: SQLite and a local artifact store in the workspace."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        None, description="MLflow tracking URI; default $ZERO2ONE_TRACKING_URI, else SQLite in the workspace."
    )
    experiment: str = Field("zero2one", description="MLflow experiment for all stage runs.")
    ui_url: str = Field("http://127.0.0.1:5000", description="Where the MLflow UI is, for links in Prefect.")


class Tracking(BaseModel):
    """Resolved tracking settings, handed to every task."""

    uri: str
    experiment: str
    artifact_location: str | None
    ui_url: str

    @classmethod
    def resolve(cls, cfg: TrackingConfig, ws: Workspace) -> Tracking:
        # Not $MLFLOW_TRACKING_URI: `mlflow.set_tracking_uri` writes that variable, so in a long-lived
        # worker it would carry one run's workspace into the next.
        uri = cfg.uri or os.environ.get("ZERO2ONE_TRACKING_URI")
        if uri:  # a tracking server or database: it decides where artifacts go
            return cls(uri=uri, experiment=cfg.experiment, artifact_location=None, ui_url=cfg.ui_url)
        return cls(
            uri=ws.tracking_uri(),
            experiment=cfg.experiment,
            artifact_location=ws.artifact_location(),
            ui_url=cfg.ui_url,
        )

    def activate(self) -> str:
        """Point MLflow here; create the experiment on first use. Returns its id."""
        ensure_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        exp = mlflow.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
            except mlflow.exceptions.MlflowException:  # created concurrently by another task
                exp = mlflow.get_experiment_by_name(self.experiment)
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return exp.experiment_id

    def client(self) -> mlflow.MlflowClient:
        """A client bound to this tracking server and its registry (not to MLflow's global URIs)."""
        ensure_store(self.uri)
        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def run_url(self, run_id: str) -> str:
        exp = mlflow.get_run(run_id).info.experiment_id
        return f"{self.ui_url}/#/experiments/{exp}/runs/{run_id}"

    def artifact_url(self, run_id: str, path: str) -> str:
        """An MLflow run artifact as a URL the MLflow UI serves (for images in markdown)."""
        return f"{self.ui_url}/get-artifact?path={quote(path)}&run_uuid={run_id}"


_READY: set[str] = set()  # tracking URIs whose database this process has seen created


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:` tracking URI (None for servers and other databases)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database).resolve() if database and database != ":memory:" else None


def ensure_store(uri: str) -> None:
    """Create or migrate MLflow's SQLite database once, one process at a time.

    MLflow creates its schema and runs its alembic migrations on first connect, with no lock: processes that
    start together on a new database race (`table ... already exists`, `duplicate column name`; 3 of 4
    simultaneous processes failed here). A file lock beside the database serialises that first connect; later
    connects find the tables and skip it. Servers and other databases manage their own schema.
    """
    if uri in _READY:
        return
    if (path := sqlite_path(uri)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.init.lock"):
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)  # the tracking store: create/migrate the schema
            client.search_registered_models(max_results=1)  # the registry store checks the same schema
    _READY.add(uri)


@contextlib.contextmanager
def stage_run(
    tracking: Tracking, stage: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one attempt of one stage, nested under the pipeline's run."""
    tracking.activate()
    all_tags = {"zero2one.stage": stage, **process_tags(), **(tags or {})}
    if run_id := flow_run_id():
        all_tags["prefect.flow_run_id"] = run_id
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    # Our own run, not a nested `start_run`: a task may run on a worker where the parent is not active.
    with mlflow.start_run(run_name=stage, tags=all_tags) as run:
        yield run
    mlflow.flush_async_logging()


def open_pipeline_run(tracking: Tracking, run_name: str, params: dict, tags: dict[str, str]) -> str:
    """The parent MLflow run of one flow run; stage runs nest under it."""
    experiment_id = tracking.activate()
    client = tracking.client()
    mark_orphans(client, experiment_id, reporting.logger)  # runs a killed process left RUNNING
    all_tags = {"zero2one.stage": "pipeline", **process_tags(), **tags}
    if run_id := flow_run_id():
        all_tags["prefect.flow_run_id"] = run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    return run.info.run_id


def close_pipeline_run(
    tracking: Tracking,
    run_id: str,
    ok: bool,
    metrics: dict[str, float] | None = None,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    note: str | None = None,
) -> None:
    """End the parent run: its headline metrics, a name that says which model version it made, a markdown note."""
    client = tracking.client()
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, value)
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    if note:
        client.set_tag(run_id, "mlflow.note.content", note)  # the run page's description (markdown)
    if name:
        client.update_run(run_id, name=name)
    client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")


def prefect_run_url(flow_run_id: str) -> str:
    """The flow run's page in the Prefect UI (the server's UI when one is configured, else `zero2one ui`'s)."""
    from prefect.settings import PREFECT_UI_URL

    base = (PREFECT_UI_URL.value() or "http://127.0.0.1:4200").rstrip("/")
    return f"{base}/runs/flow-run/{flow_run_id}"
