"""The finetune_entities stage: a token classifier on the checkpoint (or the pretrained encoder), with the Trainer.

The training itself is `train.py` (first sub-token labelled, overlapping windows instead of truncation, the best
validation-F1 epoch kept); this stage runs it in the training skeleton (key, lock, publish) and its MLflow run.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import mlflow
from pydantic import BaseModel

from core.checkpoints import local_checkpoint
from core.errors import PipelineInputError
from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.entities.config import EntityFinetuneConfig
from tasks.kinds.entities.splits import sentences
from tasks.kinds.entities.train import EntityTrainConfig, train_entities
from tasks.results.classification import EncoderArtifact
from tasks.results.data import TokenizerArtifact
from tasks.results.entities import PreparedEntities, TaggedModel
from tasks.training.common import TrainingJob, report_stage, training_run
from tasks.training.skeleton import TrainingStage

STAGE = "finetune_entities"


class EntityJob(TrainingJob):
    cfg: EntityFinetuneConfig
    data: PreparedEntities
    base: str


class TrainedTagger(BaseModel):
    labels: list[str]
    best_f1: float
    steps: int
    seconds: float
    processes: int = 1


def train_tagger(job: EntityJob) -> TrainedTagger:
    """`train.train_entities` on the prepared splits; the Trainer's checkpoints are dropped once the best is saved."""
    cfg, out = job.cfg, Path(job.workdir) / "model"
    train_cfg = EntityTrainConfig(
        checkpoint=job.base,
        epochs=cfg.epochs,
        learning_rate=cfg.optim.learning_rate,
        batch_size=cfg.optim.batch_size,
        weight_decay=cfg.optim.weight_decay,
        warmup_share=cfg.warmup_share,
        max_length=cfg.max_length,
        overlap=cfg.overlap,
        seed=cfg.optim.seed,
    )
    meta = train_entities(sentences(job.data, "train"), sentences(job.data, "validation"), out, train_cfg)
    shutil.rmtree(out / "trainer", ignore_errors=True)  # epoch checkpoints: the best one is saved in `out`
    steps = math.ceil(meta["train_windows"] / cfg.optim.batch_size) * cfg.epochs
    return TrainedTagger(
        labels=meta["labels"], best_f1=meta["best_dev_f1"], steps=int(steps), seconds=meta["train_seconds"]
    )


def finetune_entities(
    cfg: EntityFinetuneConfig,
    data: PreparedEntities,
    tokenizer: TokenizerArtifact,
    encoder: EncoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> TaggedModel:
    base = cfg.base_model or (encoder.uri if encoder else None)
    if base is None:
        raise PipelineInputError("entity_finetune.base_model is required when pretrain.enabled=false")
    run = TrainingStage(STAGE, ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base)
    with run.locked() as resume:
        job = EntityJob(cfg=cfg, data=data, base=local_checkpoint(base), **resume)
        tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.base_model": base, "zero2one.task": "entities"}
        with training_run(STAGE, train_tagger, job, tracking, parent_run_id, tags) as (trained, run_id):
            mlflow.log_metrics({"best_validation_f1": trained.best_f1, "train_seconds": trained.seconds})
        uri = run.publish("model")
    report_stage(
        STAGE,
        f"# Entity fine-tuning\n\n{len(trained.labels)} tags ({', '.join(trained.labels)}), {trained.steps} steps in "
        f"{trained.seconds:.0f} s; best validation entity F1 {trained.best_f1:.4f}\n\nModel: `{uri}`  \n",
        tracking,
        run_id,
    )
    return TaggedModel(
        uri=uri,
        base_model=base,
        method="full",
        global_step=trained.steps,
        resumed_from_step=0,  # train.py keeps the best epoch; a retry trains again (an epoch is minutes on CPU)
        mlflow_run_id=run_id,
        pretrain_run_id=encoder.mlflow_run_id if encoder else None,
        labels=trained.labels,
        best_metric=trained.best_f1,
    )
