"""Fine-tuning recipes: the values a run uses for the hyperparameters its config leaves unset.

A checkpoint pretrained on a large corpus (`finetune.base_model`) wants a gentle nudge: a small learning rate,
warmed up over the first 6% of the steps, for 3 epochs (BERT's paper and the transformers examples use 2e-5 to
5e-5 and 2-4 epochs), evaluated every 500 steps on large sets. The small encoder the pretrain stage trains from
scratch learns with a learning rate 15x higher over more epochs (the tiny preset's values, measured on the demo
data).

The rule: a setting given in a preset or with `--set` always wins; one left unset (null) comes from the recipe.
`max_length` left unset comes from the data: the 99th percentile of the training texts' token lengths, capped by
the longest input the model takes. Unset means null, not "equal to the default", so the rule holds after the
config crosses to a deployment or a torchrun process as JSON.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.training import OptimConfig

if TYPE_CHECKING:
    from tasks.finetune import FinetuneConfig

RecipeName = Literal["pretrained", "from-scratch"]
LENGTH_SAMPLE = 20_000  # texts tokenized to find the 99th percentile (1-2 s on one core)


class Recipe(BaseModel):
    """Defaults for one kind of encoder; a warmup is given either as steps or as a share of all steps."""

    model_config = ConfigDict(frozen=True)

    epochs: float
    learning_rate: float
    weight_decay: float
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    eval_every_steps: int | None = Field(None, description="Evaluate every N steps when an epoch is longer.")


RECIPES: dict[str, Recipe] = {
    "pretrained": Recipe(epochs=3, learning_rate=3e-5, weight_decay=0.01, warmup_ratio=0.06, eval_every_steps=500),
    "from-scratch": Recipe(epochs=6, learning_rate=5e-4, weight_decay=0.01, warmup_steps=20),
}


class FinetuneOptim(OptimConfig):
    """The optimiser settings of fine-tuning; those left unset (null) come from the recipe."""

    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate; unset: the recipe's.")
    weight_decay: float | None = Field(None, ge=0, description="AdamW weight decay; unset: the recipe's (0.01).")
    warmup_steps: int | None = Field(
        None, ge=0, description="Linear warmup in optimizer steps; wins over warmup_ratio; unset: the recipe's."
    )
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Warmup as a share of all steps (used when warmup_steps is unset)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_shared_optim(cls, data):
        """Code that passes the shared `OptimConfig` keeps only what it set: the rest stays with the recipe."""
        if isinstance(data, OptimConfig) and not isinstance(data, FinetuneOptim):
            return data.model_dump(exclude_unset=True)
        return data


class FinetunePlan(BaseModel):
    """What one fine-tuning run really uses: the config's explicit settings, the recipe for the rest."""

    recipe: RecipeName
    why: str
    epochs: float
    optim: OptimConfig
    max_length: int
    length_source: str
    eval_steps: int | None = Field(description="Evaluate every N steps; None: once per epoch.")
    total_steps: int
    from_config: list[str]

    def describe(self) -> str:
        """One sentence for the log: every resolved value, and which ones the config set."""
        o = self.optim
        evaluation = f"every {self.eval_steps} steps" if self.eval_steps else "every epoch"
        share = f" ({o.warmup_steps / self.total_steps:.1%} of the steps)" if self.total_steps else ""
        return (
            f"fine-tuning recipe '{self.recipe}' ({self.why}): learning rate {o.learning_rate:.3g}, "
            f"{self.epochs:g} epochs ({self.total_steps} steps of {o.batch_size}), "
            f"warmup {o.warmup_steps} steps{share}, weight decay {o.weight_decay:g}, "
            f"max_length {self.max_length} tokens ({self.length_source}), "
            f"evaluation {evaluation}; "
            f"set in the config: {', '.join(self.from_config) or 'nothing'}"
        )


def model_limit(model_config, tokenizer) -> int:
    """The longest input the model takes: its position embeddings, or less if its tokenizer says so.

    (RoBERTa-style models have 514 positions for 512 tokens; a freshly trained tokenizer reports no limit.)
    """
    positions = getattr(model_config, "max_position_embeddings", None) or 10**9
    return int(min(positions, tokenizer.model_max_length or 10**9))


def token_length_p99(tokenizer, texts: list[str], seed: int = 0) -> int:
    """The 99th percentile of the texts' token lengths (special tokens included), on a sample of large sets."""
    if len(texts) > LENGTH_SAMPLE:
        texts = random.Random(seed).sample(texts, LENGTH_SAMPLE)
    lengths = [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]
    return int(math.ceil(np.percentile(lengths, 99)))


def resolve_max_length(explicit: int | None, tokenizer, texts: list[str], limit: int) -> tuple[int, str]:
    """`max_length` and where it came from: the config's value or the data's p99, capped by the model's limit."""
    if explicit is not None:
        source = "finetune.max_length" + (f", capped by the model's {limit}" if explicit > limit else "")
        return min(explicit, limit), source
    p99 = token_length_p99(tokenizer, texts)
    capped = f", capped by the model's {limit}" if p99 > limit else f"; the model takes up to {limit}"
    return min(p99, limit), f"99th percentile of {len(texts)} training texts is {p99}{capped}"


def choose_recipe(cfg: FinetuneConfig) -> tuple[RecipeName, str]:
    """The recipe `cfg` asks for, and why: `auto` means pretrained exactly when `base_model` names a checkpoint."""
    if cfg.recipe != "auto":
        return cfg.recipe, "finetune.recipe"
    if cfg.base_model:
        return "pretrained", "finetune.base_model is set"
    return "from-scratch", "the encoder comes from the pretrain stage"


def plan_finetune(cfg: FinetuneConfig, n_train: int, max_length: tuple[int, str]) -> FinetunePlan:
    """Fill every unset setting of `cfg` from its recipe; warmup ratios become steps (the Trainer counts steps)."""
    name, why = choose_recipe(cfg)
    recipe = RECIPES[name]
    optim = cfg.optim
    explicit = [f"optim.{k}" for k in ("learning_rate", "weight_decay", "warmup_steps", "warmup_ratio")]
    explicit = [k for k in explicit if getattr(optim, k.split(".")[1]) is not None]
    explicit += [k for k in ("epochs", "max_length", "eval_steps") if getattr(cfg, k) is not None]
    epochs = cfg.epochs if cfg.epochs is not None else recipe.epochs
    steps_per_epoch = max(1, math.ceil(n_train / optim.batch_size) // optim.gradient_accumulation_steps)
    total = math.ceil(steps_per_epoch * epochs)
    if optim.warmup_steps is not None:
        warmup = optim.warmup_steps
    elif optim.warmup_ratio is not None or recipe.warmup_steps is None:
        warmup = math.ceil(total * (optim.warmup_ratio if optim.warmup_ratio is not None else recipe.warmup_ratio))
    else:
        warmup = recipe.warmup_steps
    eval_steps = cfg.eval_steps
    if eval_steps is None and recipe.eval_every_steps and steps_per_epoch > recipe.eval_every_steps:
        eval_steps = recipe.eval_every_steps
    resolved = optim.model_dump(exclude={"warmup_ratio"}) | {
        "learning_rate": optim.learning_rate if optim.learning_rate is not None else recipe.learning_rate,
        "weight_decay": optim.weight_decay if optim.weight_decay is not None else recipe.weight_decay,
        "warmup_steps": warmup,
    }
    return FinetunePlan(
        recipe=name,
        why=why,
        epochs=epochs,
        optim=OptimConfig(**resolved),
        max_length=max_length[0],
        length_source=max_length[1],
        eval_steps=eval_steps,
        total_steps=total,
        from_config=explicit,
    )
