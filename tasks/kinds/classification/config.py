"""The fine-tuning settings (`finetune:` in a preset): what the user sets, and what is left to the recipe.

Kept apart from the stage (`finetune.py`) and the recipe (`recipes.py`), which both read them, so neither imports
the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.lora import LoraSettings
from tasks.training.settings import RecipeOptim, TrainingConfig

MULTI_CLASS = 3  # from this many classes the pretrained recipe gives the head its own rate and sizes the epochs
HEAD_LEARNING_RATE = 3e-3  # the new head's rate with the pretrained recipe on multi-class data
LABEL_SMOOTHING = 0.1  # the pretrained recipe's label smoothing on multi-class data (measured on BANKING77)


class FinetuneOptim(RecipeOptim):
    """The optimiser settings of fine-tuning; those left unset (null) come from the recipe."""

    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate; unset: the recipe's.")
    weight_decay: float | None = Field(None, ge=0, description="AdamW weight decay; unset: the recipe's (0.01).")
    warmup_steps: int | None = Field(
        None, ge=0, description="Linear warmup in optimizer steps; wins over warmup_ratio; unset: the recipe's."
    )
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Warmup as a share of all steps (used when warmup_steps is unset)."
    )
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the new classification head (and pooler); unset: the recipe's "
        f"({HEAD_LEARNING_RATE:g} for a pretrained checkpoint on {MULTI_CLASS}+ classes, else learning_rate).",
    )


class FinetuneConfig(TrainingConfig):
    """Fine-tune a classifier. The encoder is the pretraining output unless `base_model` is set.

    Settings left unset (null) come from the recipe (`tasks/kinds/classification/recipes.py`); a value set in a
    preset or with `--set` always wins over the recipe.
    """

    base_model: str | None = Field(
        None,
        description="Checkpoint to fine-tune: a folder, a hub name, or pkg:<module> (one shipped in an installed "
        "Python package); default: the pretrained encoder.",
    )
    recipe: Literal["auto", "pretrained", "from-scratch"] = Field(
        "auto",
        description="Where unset settings come from: pretrained (lr 3e-5, 6% warmup, 3 epochs; from 3 classes a "
        "head lr of its own and 3-10 epochs sized to the classes) or from-scratch (lr 5e-4, 20 warmup steps, "
        "6 epochs); auto: pretrained when base_model is set.",
    )
    method: Literal["full", "lora"] = "full"
    epochs: float | None = Field(None, gt=0, description="Passes over the training data; unset: the recipe's.")
    max_length: int | None = Field(
        None,
        gt=0,
        description="Truncate texts to this many tokens; unset: the 99th percentile of the training texts' token "
        "lengths. Capped by the model's limit either way.",
    )
    eval_steps: int | None = Field(
        None,
        gt=0,
        description="Evaluate, checkpoint and check early stopping every N steps; unset: every epoch, or every "
        "500 steps with the pretrained recipe when an epoch is longer.",
    )
    truncation: Literal["head", "head_tail"] = Field(
        "head",
        description="Texts longer than max_length: keep the first tokens (head), or the first quarter of the window "
        "and the end of the text (head_tail, models/truncation.py); predictions cut the same way.",
    )
    group_by_length: bool = Field(True, description="Batch texts of similar length together (less padding).")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Evaluations without improvement before stopping; unset: the recipe's (2, or half the epochs "
        f"for a pretrained checkpoint on {MULTI_CLASS}+ classes).",
    )
    metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    class_weights: Literal["auto", "balanced", "none"] = Field(
        "auto",
        description="Weight the loss per class: balanced (n / (k * count)), none, or auto: balanced where the "
        "largest class is 10x the smallest or more.",
    )
    label_smoothing: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Share of each target spread over the other classes (Szegedy et al. 2016); unset: the "
        f"recipe's ({LABEL_SMOOTHING:g} for a pretrained checkpoint on {MULTI_CLASS}+ classes, else 0).",
    )
    lora: LoraSettings = LoraSettings()
    optim: FinetuneOptim = FinetuneOptim(batch_size=32)
