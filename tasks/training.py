"""What the two training stages share: Trainer arguments, precision and checkpoint resume."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import TrainingArguments

from models.device import Precision, resolve_precision


class OptimConfig(BaseModel):
    """Optimiser and loop settings common to pretraining and fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(32, gt=0, description="Per-device batch size.")
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(0, ge=0)
    gradient_accumulation_steps: int = Field(1, ge=1)
    precision: Precision = Field("auto", description="auto: bf16/fp16 on GPU, fp32 on CPU.")
    seed: int = 0


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


def training_arguments(output_dir: Path, optim: OptimConfig, **overrides) -> TrainingArguments:
    precision = resolve_precision(optim.precision)
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=optim.batch_size,
        per_device_eval_batch_size=optim.batch_size * 2,
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
        **overrides,
    )
