"""The tune stage (off by default): an Optuna search over the fine-tune recipe, scored on the validation split.

Each trial is the fine-tune stage's own Trainer loop (`train_classifier`) with sampled learning rate, epochs,
batch size and warmup, run as a Prefect task (at most `concurrency` at once) inside an MLflow run nested under
the tune stage's run. The study lives in Optuna's own storage (SQLite in the workspace by default), keyed by the
inputs, so a retried stage continues the same study instead of starting over. The best trial's settings are
returned as a `TuneResult`; the flow applies them to the real fine-tune stage (`TuneResult.apply`).

Each trial's per-epoch validation values are reported to the study (for the pruner and Optuna's plots) when the
trial ends: `train_classifier` takes no extra Trainer callbacks, so a trial is not yet stopped mid-run by the pruner.

Its results (`TuneResult`, `TrialResult`) are in `tasks/results.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path
from typing import Literal

import mlflow
import optuna
from optuna.trial import TrialState
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import reporting
from core.checkpoints import local_checkpoint
from core.errors import PipelineInputError
from core.fingerprint import code_fingerprint, hash_json
from core.orchestration import RetryPolicy, stage_task
from core.run_context import flow_run_id
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.finetune import FinetuneJob, train_classifier
from tasks.kinds.classification.recipes import RECIPES, choose_recipe
from tasks.results import EncoderArtifact, PreparedData, TokenizerArtifact, TrialResult, TuneResult, with_settings
from tasks.training import distributed
from tasks.training.common import last_checkpoint, report_stage


class SearchSpace(BaseModel):
    """Ranges the sampler draws from; a range with low == high fixes that setting. Unset: around the recipe's."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: tuple[float, float] | None = Field(
        None, description="Log-uniform range; unset: a third to three times the fine-tune recipe's learning rate."
    )
    epochs: tuple[int, int] | None = Field(
        None, description="Integer range of epochs (early stopping stays on); unset: half to 1.5x the recipe's."
    )
    batch_size: list[int] = Field([16, 32, 64], min_length=1, description="Batch sizes to choose from.")
    warmup_ratio: tuple[float, float] = Field(
        (0.0, 0.15), description="Range of the share of training steps spent warming up (optim.warmup_ratio)."
    )

    @model_validator(mode="after")
    def _ranges(self) -> SearchSpace:
        for name in ("learning_rate", "epochs", "warmup_ratio"):
            if (pair := getattr(self, name)) is None:
                continue
            low, high = pair
            if low > high or low < 0 or (name != "warmup_ratio" and low <= 0):
                raise ValueError(f"tune.search.{name}: needs 0 < low <= high (got [{low}, {high}])")
        if self.warmup_ratio[1] >= 1 or min(self.batch_size) <= 0:
            raise ValueError("tune.search: warmup_ratio must stay below 1 and batch sizes above 0")
        return self

    def around(self, cfg: FinetuneConfig) -> SearchSpace:
        """This space with unset ranges centred on the values the fine-tune recipe would use for `cfg`."""
        recipe = RECIPES[choose_recipe(cfg)[0]]
        lr = self.learning_rate or (recipe.learning_rate / 3, recipe.learning_rate * 3)
        epochs = self.epochs or (max(1, round(recipe.epochs / 2)), max(1, round(recipe.epochs * 1.5)))
        return self.model_copy(update={"learning_rate": lr, "epochs": epochs})


class TuneConfig(BaseModel):
    """Hyperparameter search before fine-tuning. Off by default: each trial is a whole fine-tune on train."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Run the search and fine-tune with the best settings found.")
    n_trials: int = Field(12, ge=1, description="Trials in the study (a retried stage counts those already run).")
    timeout_seconds: float | None = Field(
        None, gt=0, description="Start no new trial after this long; running trials finish."
    )
    concurrency: int = Field(
        1, ge=1, description="Trials at once (threads of the tune task). 1 on a small CPU machine: they share cores."
    )
    metric: Literal["macro_f1", "accuracy"] = Field("macro_f1", description="Validation metric to maximise.")
    pruner: Literal["median", "none"] = Field(
        "median",
        description="Optuna pruner over each trial's per-epoch validation values (they reach it when the trial "
        "ends: the fine-tune loop takes no extra callbacks yet, so no trial is stopped mid-run).",
    )
    pruner_startup_trials: int = Field(3, ge=0, description="Trials the median pruner sees before it judges any.")
    search: SearchSpace = SearchSpace()
    storage: str | None = Field(
        None,
        description="Optuna RDB storage URL (e.g. a database on the MLflow server's PostgreSQL); default: SQLite at "
        "<workspace>/tune/optuna.db. Not MLflow's own database: both keep their schema version in alembic_version.",
    )
    seed: int = Field(0, description="Seed of the TPE sampler.")
    retry: RetryPolicy = RetryPolicy()


PARAMS = ("learning_rate", "epochs", "batch_size", "warmup_ratio")


def trial_settings(trial: optuna.Trial, space: SearchSpace) -> dict:
    """Sample one trial's fine-tune settings from a space whose ranges are all set (`SearchSpace.around`)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "epochs": trial.suggest_int("epochs", *space.epochs),
        "batch_size": trial.suggest_categorical("batch_size", space.batch_size),
        "warmup_ratio": trial.suggest_float("warmup_ratio", *space.warmup_ratio),
    }


@dataclasses.dataclass(frozen=True)
class _TrialJobs:
    """Builds the fine-tune stage's job for each trial: its settings, in a folder of its own, never resumed."""

    cfg: FinetuneConfig
    data: PreparedData
    tokenizer: TokenizerArtifact
    base: str
    folder: Path
    faults_dir: str

    def job(self, number: int, params: dict) -> FinetuneJob:
        workdir = self.folder / f"trial-{number}"
        workdir.mkdir(parents=True, exist_ok=True)
        return FinetuneJob(
            cfg=with_settings(self.cfg, params),
            data=self.data,
            tokenizer=self.tokenizer,
            base=self.base,
            workdir=str(workdir),
            resume=None,
            resume_step=0,
            faults_dir=self.faults_dir,
        )


def _epoch_curve(workdir: Path, metric: str) -> list[tuple[int, float]]:
    """(epoch, validation `metric`) at each evaluation, from the Trainer state of the trial's last checkpoint."""
    checkpoint, _ = last_checkpoint(workdir)
    if checkpoint is None:
        return []
    history = json.loads(Path(checkpoint, "trainer_state.json").read_text())["log_history"]
    return [(h["epoch"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h]


def run_trial(number: int, job: FinetuneJob, params: dict, tracking: Tracking, tune_run_id: str) -> TrialResult:
    """One trial: the fine-tune Trainer loop in an MLflow run nested under the tune run; its folder is removed."""
    started = time.monotonic()
    try:
        with stage_run(tracking, "tune-trial", tune_run_id, {"zero2one.tune.trial": str(number)}) as run:
            mlflow.set_tag("mlflow.runName", f"tune-trial-{number}")  # start_run's name wins over a tag
            mlflow.log_params(params)
            env = distributed.mlflow_env(tracking.uri, run.info.run_id)
            trained = distributed.run(train_classifier, job, job.cfg.nproc_per_node, env=env)
            mlflow.log_metric(f"best_{job.cfg.metric}", trained.best_metric, step=trained.global_step)
        curve = _epoch_curve(Path(job.workdir), job.cfg.metric)
    finally:  # the trial's checkpoints and model are not needed once it is scored
        shutil.rmtree(job.workdir, ignore_errors=True)
    return TrialResult(
        number=number,
        value=trained.best_metric,
        curve=curve,
        global_step=trained.global_step,
        mlflow_run_id=run.info.run_id,
        seconds=time.monotonic() - started,
    )


def _study(cfg: TuneConfig, name: str, storage_uri: str) -> optuna.Study:
    # SQLite from several trial threads: wait for the write lock instead of failing at once.
    storage = optuna.storages.RDBStorage(
        storage_uri, engine_kwargs={"connect_args": {"timeout": 60}} if storage_uri.startswith("sqlite") else None
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials)
        if cfg.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a crashed attempt
        study.tell(stale.number, state=TrialState.FAIL)
    return study


def _record(study: optuna.Study, trial: optuna.Trial, result: TrialResult, metric: str) -> None:
    """Tell the study how the trial did, after giving its pruner the per-epoch values."""
    trial.set_user_attr("mlflow_run_id", result.mlflow_run_id)
    trial.set_user_attr("seconds", round(result.seconds, 1))
    for epoch, value in result.curve:  # steps in hundredths of an epoch: comparable across batch sizes, and
        trial.report(value, round(epoch * 100))  # distinct when the recipe evaluates every N steps
    study.tell(trial, result.value)
    p = trial.params
    reporting.logger().info(
        "tune trial %d: validation %s %.4f with learning rate %.3g, %d epochs, batch size %d (%.0f s)",
        trial.number, metric, result.value, p["learning_rate"], p["epochs"],
        p["batch_size"], result.seconds,
    )  # fmt: skip


def _run_trials(study: optuna.Study, cfg: TuneConfig, jobs: _TrialJobs, tracking: Tracking, run_id: str) -> int:
    """Ask, train and tell until `n_trials` exist, keeping up to `concurrency` trials in flight; returns failures."""
    trial_task = stage_task(run_trial, "tune-trial", RetryPolicy(retries=0), cache=False).with_options(
        task_run_name="tune-trial-{number}"
    )
    deadline = time.monotonic() + (cfg.timeout_seconds or math.inf)
    remaining = cfg.n_trials - len(study.trials)
    pending, failures, space = {}, 0, cfg.search.around(jobs.cfg)
    with ThreadPoolTaskRunner(max_workers=cfg.concurrency) as runner:
        while remaining > 0 or pending:
            while remaining > 0 and len(pending) < cfg.concurrency and time.monotonic() < deadline:
                trial = study.ask()
                params = trial_settings(trial, space)
                job = jobs.job(trial.number, params)
                args = {"number": trial.number, "job": job, "params": params, "tracking": tracking}
                pending[runner.submit(trial_task, parameters=args | {"tune_run_id": run_id})] = trial
                remaining -= 1
            if not pending:
                break
            future = next(as_completed(list(pending)))
            trial = pending.pop(future)
            try:
                _record(study, trial, future.result(), cfg.metric)
            except PipelineInputError:  # bad input fails every trial alike: stop with the user's message
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as e:
                failures += 1
                study.tell(trial, state=TrialState.FAIL)
                reporting.logger().warning("tune trial %d failed: %s", trial.number, e)
    return failures


def _trial_rows(study: optuna.Study, metric: str) -> list[dict]:
    """One row per trial for the Prefect table artifact (values rounded for people)."""
    rows = []
    for t in study.trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                metric: round(t.value, 4) if t.value is not None else None,
                "learning_rate": float(f"{t.params.get('learning_rate', 0):.3g}"),
                "epochs": t.params.get("epochs"),
                "batch_size": t.params.get("batch_size"),
                "warmup_ratio": round(t.params.get("warmup_ratio", 0), 3),
                "seconds": t.user_attrs.get("seconds"),
            }
        )
    return rows


def tune(
    cfg: TuneConfig,
    finetune_cfg: FinetuneConfig,
    data: PreparedData,
    tokenizer: TokenizerArtifact,
    encoder: EncoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> TuneResult:
    """Search fine-tune settings on the validation split; returns the best ones and where the study is."""
    base = finetune_cfg.base_model or (encoder.uri if encoder else None)
    if base is None:
        raise PipelineInputError("tune needs finetune.base_model when pretrain.enabled=false")
    trial_cfg = finetune_cfg.model_copy(update={"metric": cfg.metric})
    key = hash_json(
        cfg.model_dump(exclude={"retry", "enabled"}),
        trial_cfg.model_dump(exclude={"retry"}),
        data.fingerprint,
        tokenizer.uri,
        base,
        code_fingerprint(),
    )
    storage_uri = cfg.storage or f"sqlite:///{ws.local_dir('tune') / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our log says what happened, in sentences
    study = _study(cfg, f"tune-{key}", storage_uri)
    jobs = _TrialJobs(
        cfg=trial_cfg,
        data=data,
        tokenizer=tokenizer,
        base=local_checkpoint(base),
        folder=ws.local_dir("tune", key),
        faults_dir=str(ws.local_dir("faults", flow_run_id() or "local")),
    )

    reporting.logger().info(
        "tuning %s: %d trials, %d at a time (study %s in %s)",
        base, cfg.n_trials, cfg.concurrency, study.study_name, storage_uri,
    )  # fmt: skip
    tags = {
        "zero2one.data_fingerprint": data.fingerprint,
        "zero2one.base_model": base,
        "optuna.study": study.study_name,
    }
    with stage_run(tracking, "tune", parent_run_id, tags) as run:
        result = _search(study, cfg, storage_uri, jobs, tracking, run.info.run_id)
    reporting.table("tune-trials", _trial_rows(study, cfg.metric), description="Hyperparameter search trials")
    report_stage("tune", _summary(result, study.best_trial.number), tracking, result.mlflow_run_id)
    return result


def _search(
    study: optuna.Study, cfg: TuneConfig, storage_uri: str, jobs: _TrialJobs, tracking: Tracking, run_id: str
) -> TuneResult:
    """The trials, inside the tune stage's MLflow run; the best one in the fine-tune stage's terms."""
    mlflow.log_params({"n_trials": cfg.n_trials, "concurrency": cfg.concurrency, "metric": cfg.metric})
    mlflow.log_params(
        {"storage": storage_uri, "pruner": cfg.pruner, "search": cfg.search.around(jobs.cfg).model_dump_json()}
    )
    failures = _run_trials(study, cfg, jobs, tracking, run_id)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"all {len(study.trials)} tune trials failed; their errors are in the log above")
    best = study.best_trial
    mlflow.log_metrics({f"best_{cfg.metric}": best.value, "trials_failed": failures})
    mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
    return TuneResult(
        best_params={k: best.params[k] for k in PARAMS},
        best_value=best.value,
        metric=cfg.metric,
        n_trials=len(study.trials),
        n_complete=len(complete),
        study_name=study.study_name,
        storage_uri=storage_uri,
        mlflow_run_id=run_id,
    )


def _summary(result: TuneResult, best_number: int) -> str:
    p = result.best_params
    return (
        f"# Hyperparameter search\n\n{result.n_complete} of {result.n_trials} trials completed; best validation "
        f"{result.metric} {result.best_value:.4f} (trial {best_number}): learning rate {p['learning_rate']:.3g}, "
        f"{p['epochs']} epochs, batch size {p['batch_size']}, warmup ratio {p['warmup_ratio']:.3f}\n\n"
        f"Study `{result.study_name}` in `{result.storage_uri}`  \n"
    )
