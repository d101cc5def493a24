"""The `retrain` flow: fine-tune the champion again on its own data plus newly labeled rows, then gate and promote.

    champion (by alias) -> its splits + the labeled rows of a window -> `pipeline` (the champion's own settings,
    pretraining off, fine-tuning from the champion's checkpoint) -> the pipeline's own gate and promotion

The settings are the ones the champion was trained with (the pipeline config its version recorded), so a retrain
after drift is not worse than the champion merely because it trained with the defaults; only workspace and tracking
come from the caller (where the monitor read the window). `settings="given"` trains with the caller's config as it
is instead; a champion registered before versions recorded their config falls back to it, and says so.

Nothing here decides whether the new version is better: the `pipeline` flow's gate does, as for
any other run. A drift event starts this flow through the deployment trigger (see
`deployments/`); where no automations run, `zero2one monitor --retrain-on-drift` calls it.
"""

from __future__ import annotations

from typing import Literal

from mlflow.exceptions import MlflowException
from prefect import flow
from pydantic import BaseModel

from core import reporting
from core.errors import PipelineInputError
from core.orchestration import stage_task
from core.registry_names import DEFAULT_MODEL_NAME
from core.retry import RetryPolicy
from core.tracking import Tracking
from core.workspace import Workspace
from flows.approval import await_approval, suspendable_run_id
from flows.config import PipelineConfig, validate
from flows.outcome import mark_flow_run
from flows.pipeline import PipelineResult, pipeline
from flows.resume import THIS_RUN, stage_task_for
from tasks.kinds.registry import kind
from tasks.monitoring.champion import find_champion, recorded_config
from tasks.monitoring.windows import WindowSource
from tasks.registry.approval import pending
from tasks.results import Champion, RetrainData
from tasks.stage_configs import SplitConfig

Settings = Literal["champion", "given"]


class RetrainResult(BaseModel):
    """What was retrained from what, on which data, and whether the new version became champion."""

    model: str
    alias: str
    champion_before: str
    new_version: str
    champion_after: str | None
    promoted: bool
    gate: str
    data: RetrainData
    settings: str = "given"  # where the training settings came from: the champion's recorded config, or "given"
    pipeline: PipelineResult


def retrain_config(base: PipelineConfig, champion: Champion, data: RetrainData, repretrain: bool) -> PipelineConfig:
    """`base` (the champion's settings, or the given ones) with the merged data and, unless `repretrain`, training
    from the champion's checkpoint: the champion's model kind says how (`ModelKind.retrain_settings`)."""
    champion_kind = kind(champion.task)
    raw = base.model_dump(mode="json")
    raw["registry"]["model_name"] = champion.name
    tuning = getattr(base, champion_kind.sections.finetune)  # the typed fine-tuning section: its recipe
    return validate(champion_kind.retrain_settings(raw, tuning, champion, data, repretrain), source="retrain config")


def champion_settings(given: PipelineConfig, champion: Champion, recorded: dict | None) -> PipelineConfig:
    """The champion's recorded config with the workspace and tracking of `given`; `given` when none was recorded."""
    who = f"{champion.name} v{champion.version}"
    if recorded is None:
        print(f"{who} was registered before versions recorded their pipeline config: retraining with the given one")
        return given
    where = given.model_dump(mode="json", include={"workspace", "tracking"})
    print(
        f"retraining with the settings {who} was trained with ({champion.config_uri}), workspace and tracking as given"
    )
    try:
        return validate(recorded | where, source=f"pipeline config recorded with {who} ({champion.config_uri})")
    except PipelineInputError as e:  # e.g. recorded by an older version of the code whose settings were renamed
        raise PipelineInputError(f"{e}\n  (retrain with settings=given to train with the given config)") from None


def _base(
    settings: Settings, given: PipelineConfig, tracking: Tracking, champion: Champion
) -> tuple[PipelineConfig, str]:
    """The config a retrain starts from, and where its training settings came from (said in the result)."""
    if settings == "given":
        return given, "given"
    recorded = stage_task(recorded_config, "recorded_config", RetryPolicy(retries=0), cache=False)(tracking, champion)
    base = champion_settings(given, champion, recorded)
    return base, f"{champion.name} v{champion.version} ({champion.config_uri})" if recorded else "given (none recorded)"


def resolve_champion(
    pipeline_config: PipelineConfig, model_name: str, alias: str
) -> tuple[Workspace, Tracking, Champion]:
    """The workspace and tracking `pipeline_config` names, and `model_name@alias` found there (monitor shares this)."""
    ws = pipeline_config.workspace.resolved()
    tracking = Tracking.resolve(pipeline_config.tracking, ws)
    champion = stage_task(find_champion, "find_champion", RetryPolicy(retries=0), cache=False)(
        tracking, model_name, alias
    )
    return ws, tracking, champion


def _alias_version(tracking: Tracking, name: str, alias: str) -> str | None:
    try:
        return str(tracking.client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@flow(name="retrain", log_prints=True)
def retrain(
    model_name: str = DEFAULT_MODEL_NAME,
    alias: str = "champion",
    new_data: WindowSource = WindowSource(),
    pipeline_config: PipelineConfig = PipelineConfig(),
    repretrain: bool = False,
    settings: Settings = "champion",
) -> RetrainResult:
    """Retrain `model_name@alias` on its reference data plus the labeled rows of `new_data`.

    `pipeline_config` supplies the workspace and tracking. `settings` picks the training settings:
    `champion` (default) those the champion was trained with (the config its version recorded; the given
    config when it recorded none), `given` the rest of `pipeline_config` as it is. `repretrain=true`
    pretrains a new encoder instead of starting from the champion's checkpoint.
    """
    ws, tracking, champion = resolve_champion(pipeline_config, model_name, alias)
    base, source = _base(settings, pipeline_config, tracking, champion)
    champion_kind = kind(champion.task)  # new labeled rows for a classifier, prompt/answer pairs for a generator
    split = getattr(getattr(base, champion_kind.sections.data), "split", SplitConfig())  # where the new rows go
    writer = champion_kind.retrain_data
    # Resumed after approval, this run reuses the data it wrote and the pipeline it ran (flows/resume.py).
    data = stage_task_for(writer, RetryPolicy(retries=0), THIS_RUN)(
        champion, new_data, ws, split.validation, split.test, split.seed
    )
    print(f"retraining {champion.name} v{champion.version}: added {data.added} labeled rows, dropped {data.dropped}")
    config = retrain_config(base, champion, data, repretrain)
    result = pipeline(config)
    if result.approval == "pending" and suspendable_run_id():  # the pipeline inside cannot suspend; this run can
        waiting = pending(champion.name, result.registered.version, tracking)
        state, _ = await_approval(champion.name, waiting.version, waiting.why, tracking, config.gate.approval_timeout)
        result = result.model_copy(update={"approval": state})
    after = _alias_version(tracking, champion.name, alias)
    out = RetrainResult(
        model=champion.name,
        alias=alias,
        champion_before=champion.version,
        new_version=result.registered.version,
        champion_after=after,
        promoted=after == result.registered.version,
        gate=result.gate_summary,
        data=data,
        settings=source,
        pipeline=result,
    )
    reporting.markdown(
        "retrain",
        f"# Retrained {out.model} v{out.champion_before} -> v{out.new_version}\n\n"
        f"Added rows: {data.added}; dropped: {data.dropped}  \nSettings: {source}  \nGate: {out.gate}  \n"
        f"`{alias}` is now v{after} ({'promoted' if out.promoted else 'not promoted'})\n",
        description="Retraining after drift",
    )
    mark_flow_run(
        f"retrain · {out.model} v{out.champion_before} → v{out.new_version} · {result.outcome}", [result.outcome]
    )
    return out
