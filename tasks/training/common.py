"""What the training stages share: Trainer arguments, precision, checkpoint resume, and their MLflow run."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import mlflow
import torch
from pydantic import BaseModel
from transformers import TrainingArguments

from core import reporting
from core.run_context import flow_run_id
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.device import distributed_backend, resolve_precision
from tasks.training import distributed
from tasks.training.settings import OptimConfig, RecipeOptim, TrainingConfig, check_divisible  # noqa: F401 (re-exported)

J = TypeVar("J", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


def last_checkpoint(folder: Path) -> tuple[str | None, int]:
    """The newest `checkpoint-<step>` in `folder` and its step, for resuming after a failure."""
    steps = [
        (int(m.group(1)), p)
        for p in folder.glob("checkpoint-*")
        if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / "trainer_state.json").exists()
    ]
    if not steps:
        return None, 0
    step, path = max(steps)
    return str(path), step


class TrainingJob(BaseModel):
    """What every training stage's job carries besides its inputs: the folder it trains in, the checkpoint to resume
    from, and where fault markers go. JSON, so a job can cross to torchrun's processes
    (`tasks/training/distributed.py`)."""

    workdir: str
    resume: str | None = None
    resume_step: int = 0
    faults_dir: str


def resume_fields(workdir: Path, ws: Workspace) -> dict[str, str | int | None]:
    """`TrainingJob`'s fields for a stage training in `workdir`: resume from its newest checkpoint, if any."""
    resume, step = last_checkpoint(workdir)
    # Per flow run: torchrun's processes cannot see the Prefect run that names the fault markers.
    faults = ws.local_dir("faults", flow_run_id() or "local")
    return {"workdir": str(workdir), "resume": resume, "resume_step": step, "faults_dir": str(faults)}


def pretraining_arguments(workdir: str, cfg, **overrides) -> TrainingArguments:
    """A pretraining stage's Trainer settings: `cfg.max_steps` steps, a checkpoint every `cfg.save_steps`, no
    evaluation during training (the stage evaluates once at the end)."""
    return training_arguments(
        Path(workdir),
        cfg.optim,
        cfg.nproc_per_node,
        max_steps=cfg.max_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        logging_steps=max(1, min(50, cfg.max_steps // 10)),
        eval_strategy="no",
        **overrides,
    )


def training_arguments(output_dir: Path, optim: OptimConfig, nproc_per_node: int = 1, **overrides) -> TrainingArguments:
    """Trainer arguments for one process of `nproc_per_node`.

    Each process takes `batch_size / nproc_per_node` examples, so an optimizer step sees the same batch and a run
    takes the same number of steps on one process or many: moving to more GPUs changes speed, not the training.
    """
    precision = resolve_precision(optim.precision)
    per_device = optim.batch_size // nproc_per_node
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device * 2,
        learning_rate=optim.learning_rate,
        weight_decay=optim.weight_decay,
        warmup_steps=optim.warmup_steps,
        gradient_accumulation_steps=optim.gradient_accumulation_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=optim.seed,
        report_to=["mlflow"],
        save_total_limit=2,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_backend=distributed_backend() if nproc_per_node > 1 else None,
        # Accelerate only sets up gloo between CPU processes when told the run is CPU-only.
        use_cpu=nproc_per_node > 1 and not torch.cuda.is_available(),
        **overrides,
    )


@contextlib.contextmanager
def training_run(
    stage: str,
    train: Callable[[J], R],
    job: J,
    tracking: Tracking,
    parent_run_id: str | None,
    tags: dict[str, str],
    params: dict | None = None,
) -> Iterator[tuple[R, str]]:
    """`train(job)` inside the stage's MLflow run; yields its result and the run id, the run still open for metrics.

    `job` is a stage's job (`cfg.nproc_per_node`, `resume_step`). Under torchrun, rank 0's Trainer logs to this run.
    """
    nproc = job.cfg.nproc_per_node
    with stage_run(tracking, stage, parent_run_id, tags) as run, _quiet_trainer_params():
        mlflow.log_params(
            config_params(job.cfg) | (params or {}) | {"resumed_from_step": job.resume_step, "nproc_per_node": nproc}
        )
        env = distributed.mlflow_env(tracking.uri, run.info.run_id) | {_MAX_PARAMS: "0"}
        trained = distributed.run(train, job, nproc, env=env)
        mlflow.log_params({"training_processes": trained.processes})
        yield trained, run.info.run_id


# transformers' MLflow callback logs every TrainingArguments field and the whole model config (~150 params, with
# `id2label {0: 'LABEL_0', ...}`) and has no switch for it but this cap; the stages log what was set and used instead.
_MAX_PARAMS = "MLFLOW_MAX_LOG_PARAMS"


@contextlib.contextmanager
def _quiet_trainer_params() -> Iterator[None]:
    before = os.environ.get(_MAX_PARAMS)
    os.environ[_MAX_PARAMS] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_MAX_PARAMS, None)
        else:
            os.environ[_MAX_PARAMS] = before


def _param(value: object) -> object:
    """A param value as people read it; floats keep 4 significant digits (4 decimals made a 3e-5 learning rate 0)."""
    if isinstance(value, float) and not value.is_integer():
        return float(f"{value:.4g}")
    return reporting.readable(value)


def optim_params(optim: OptimConfig) -> dict[str, object]:
    """The optimiser settings a run really used, for the stage's MLflow params."""
    return {k: _param(v) for k, v in optim.model_dump(mode="json").items()}


def config_params(cfg: BaseModel, prefix: str = "config.") -> dict[str, object]:
    """The settings the user set (in the YAML or a --set), flattened: `config.optim.learning_rate`."""
    return _flat(cfg.model_dump(mode="json", exclude_unset=True, exclude={"retry"}), prefix)


def _flat(values: dict, prefix: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = _param(value)
    return out


def report_stage(stage: str, text: str, tracking: Tracking, run_id: str) -> None:
    """The stage's Prefect artifact: `text`, then a link to its MLflow run."""
    reporting.markdown(stage, f"{text}MLflow run: [{run_id}]({tracking.run_url(run_id)})\n")
