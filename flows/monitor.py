"""The `monitor` flow: champion -> window of production inputs -> Evidently drift check -> event (-> retrain).

    find the champion by alias (its lineage gives the reference data and checkpoint)
    -> check the window (tasks/monitoring/: signals, policy, HTML reports in MLflow, Prefect artifacts)
    -> on drift, emit `zero2one.drift.detected` on resource `zero2one.model.<name>`
    -> with `retrain_on_drift`, run the `retrain` flow right here (for setups without automations)

A window too small to judge ends as `insufficient_data`: no event, no retraining. Bad input (no
such champion, no text column, an empty window) raises PipelineInputError before anything is
emitted.
"""

from __future__ import annotations

from prefect import flow
from prefect.events import emit_event
from pydantic import BaseModel

from core import reporting
from core.orchestration import stage_task
from core.registry_names import DEFAULT_MODEL_NAME, DRIFT_EVENT, model_resource_id
from flows.config import PipelineConfig
from flows.outcome import mark_flow_run
from flows.retrain import RetrainResult, Settings, resolve_champion, retrain
from tasks.monitoring.check import check_drift, event_payload
from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.results import DriftReport
from tasks.monitoring.textfile import write_textfile
from tasks.monitoring.windows import WindowSource


class MonitorResult(BaseModel):
    """The verdict, the id of the event it emitted (on drift), and the retraining it ran (with retrain_on_drift)."""

    report: DriftReport
    event_id: str | None = None
    retrain: RetrainResult | None = None
    retrain_skipped: str | None = None


def model_resource(name: str, version: str) -> dict[str, str]:
    """The Prefect resource a drift event is about (the same id promotion events use)."""
    return {"prefect.resource.id": model_resource_id(name), "prefect.resource.name": name, "zero2one.version": version}


@flow(name="monitor", log_prints=True)
def monitor(
    model_name: str = DEFAULT_MODEL_NAME,
    alias: str = "champion",
    window: WindowSource = WindowSource(),
    config: MonitorConfig = MonitorConfig(),
    retrain_on_drift: bool = False,
    pipeline_config: PipelineConfig = PipelineConfig(),
    retrain_settings: Settings = "champion",
) -> MonitorResult:
    """Check `window` against what `model_name@alias` was trained on; say so loudly when it drifted.

    `pipeline_config` supplies the workspace and tracking; a retrain trains with the champion's recorded settings
    (`retrain_settings="given"`: with `pipeline_config`'s, see the `retrain` flow).
    """
    ws, tracking, champion = resolve_champion(pipeline_config, model_name, alias)
    report = stage_task(check_drift, "check_drift", config.retry, cache=False)(config, champion, window, tracking, ws)
    print(f"{champion.name} v{champion.version}: {report.status} - {'; '.join(report.reasons)}")
    mark_flow_run(f"monitor · {champion.name} v{champion.version} · {report.status}", [report.status])
    if config.textfile_dir:  # the Zero2oneDriftDetected alert's source (tasks/monitoring/textfile.py)
        write_textfile(config.textfile_dir, champion.name, champion.version, report.status)
    if report.status != "drift":
        return MonitorResult(report=report)

    # The workspace too: a trigger can hand it on as `pipeline_config.workspace.root` of the retrain run.
    payload = event_payload(report, alias) | {"workspace": ws.root}
    event = emit_event(
        event=DRIFT_EVENT,
        resource=model_resource(champion.name, champion.version),
        related=[{"prefect.resource.id": f"mlflow.run.{report.mlflow_run_id}", "prefect.resource.role": "report"}],
        payload=payload,
    )
    result = MonitorResult(report=report, event_id=str(event.id) if event else None)
    if not retrain_on_drift:
        return result
    if report.labeled_rows == 0:
        reason = "drift detected, but the window has no labeled rows to retrain on; label some and run `retrain`"
        reporting.logger().warning(reason)
        return result.model_copy(update={"retrain_skipped": reason})
    done = retrain(
        model_name=champion.name,
        alias=alias,
        new_data=window,
        pipeline_config=pipeline_config,
        settings=retrain_settings,
    )
    return result.model_copy(update={"retrain": done})
