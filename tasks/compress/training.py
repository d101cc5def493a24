"""Distillation of a built student with the Trainer: checkpoints every epoch, the best on validation kept, resumed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import f1_score
from transformers import DataCollatorWithPadding, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from models.compression.distill import DistillationTrainer
from models.compression.policy import CompressionPolicy


class Trained(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: object
    global_step: int
    resumed_from_step: int | None


def _macro_f1(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return {"macro_f1": float(f1_score(labels, np.asarray(logits).argmax(axis=-1), average="macro"))}


def _tokenized(ds: datasets.Dataset, tok, max_length: int) -> datasets.Dataset:
    def encode(batch):
        enc = tok(batch["text"], truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]  # for length-grouped batches
        return enc

    return ds.map(encode, batched=True, remove_columns=["text"]).rename_column("label", "labels")


def _arguments(workdir: Path, policy: CompressionPolicy, epochs: float, steps_per_epoch: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(workdir / "trainer"),
        num_train_epochs=epochs,
        per_device_train_batch_size=policy.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=policy.learning_rate,
        warmup_steps=max(1, int(0.06 * epochs * steps_per_epoch)),
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=2,  # the best and the newest
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,  # keep the cached teacher_logits column
        report_to="none",
        seed=policy.seed,
        disable_tqdm=True,
    )


def distill_student(
    student,
    tok,
    train: datasets.Dataset,
    validation: datasets.Dataset,
    policy: CompressionPolicy,
    epochs: float,
    max_length: int,
    workdir: Path,
    callbacks: Sequence = (),
) -> Trained:
    """Train `student` on `train` (text, label, teacher_logits); resumes from `workdir/trainer`'s newest checkpoint."""
    train_set = _tokenized(train, tok, max_length)
    val_set = _tokenized(validation.select_columns(["text", "label"]), tok, max_length).remove_columns("length")
    steps = -(-len(train_set) // policy.batch_size)
    args = _arguments(workdir, policy, epochs, steps)
    resume = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    trainer = DistillationTrainer(
        model=student,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=_macro_f1,
        temperature=policy.temperature,
        alpha=policy.alpha,
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    resumed = int(Path(resume).name.split("-")[-1]) if resume else None
    return Trained(model=trainer.model, global_step=trainer.state.global_step, resumed_from_step=resumed)
