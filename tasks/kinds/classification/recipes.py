"""Fine-tuning recipes: the values a run uses for the hyperparameters its config leaves unset.

A checkpoint pretrained on a large corpus (`finetune.base_model`) wants a gentle nudge: a small learning rate,
warmed up over the first 6% of the steps, for 3 epochs (BERT's paper and the transformers examples use 2e-5 to
5e-5 and 2-4 epochs), evaluated every 500 steps on large sets. The small encoder the pretrain stage trains from
scratch learns with a learning rate 15x higher over more epochs (the tiny preset's values, measured on the demo
data).

The pretrained recipe then looks at the data (`DataShape`: training examples per class). Two classes keep those
values (SMS spam beats its baseline with them). From three classes on the new head is a wide random layer that the
body's gentle rate barely moves (BANKING77, 77 intents: 0.56 validation accuracy after 3 epochs), so the head gets
a learning rate of its own, the loss label smoothing (`LABEL_SMOOTHING`), and the epochs are sized so the median
class is seen `VIEWS_PER_CLASS` times (3 to `MAX_EPOCHS`; the best validation checkpoint is kept, and early stopping
waits half the evaluations: on BANKING77 the score dipped at epochs 4-5 and peaked at 8, and stopping after 2 cost
1.2 points). Where the
largest class is `IMBALANCE_RATIO` times the smallest or more, either recipe weights the loss per class
(`n / (k * count)`, sklearn's "balanced") so a rare class is not ignored. `FinetunePlan.describe` says why.

The rule: a setting given in a preset or with `--set` always wins; one left unset (null) comes from the recipe.
`max_length` left unset comes from the data: the 99th percentile of the training texts' token lengths, capped by
the longest input the model takes. Unset means null, not "equal to the default", so the rule holds after the
config crosses to a deployment or a torchrun process as JSON.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tasks.kinds.classification.config import HEAD_LEARNING_RATE, LABEL_SMOOTHING, MULTI_CLASS, FinetuneConfig
from tasks.training.settings import OptimConfig

RecipeName = Literal["pretrained", "from-scratch"]
LENGTH_SAMPLE = 20_000  # texts tokenized to find the 99th percentile (1-2 s on one core)
VIEWS_PER_CLASS = 1000  # examples of the median class the schedule shows the model (examples x epochs)
MAX_EPOCHS = 10  # the most epochs the data may ask for; early stopping usually ends sooner
IMBALANCE_RATIO = 10.0  # largest class / smallest class from which the loss is weighted per class
PATIENCE = 2  # evaluations without a better validation metric before early stopping, unless the data say otherwise


class DataShape(BaseModel):
    """What the recipe looks at in the training split: examples per class, in label-id order."""

    class_counts: list[int]

    @classmethod
    def balanced(cls, n_train: int, n_classes: int = 2) -> DataShape:
        """`n_train` examples spread evenly (code that only knows the size)."""
        return cls(class_counts=[n_train // n_classes + (i < n_train % n_classes) for i in range(n_classes)])

    @property
    def n_train(self) -> int:
        return sum(self.class_counts)

    @property
    def median(self) -> float:
        return float(np.median(self.class_counts))

    @property
    def imbalance(self) -> float:
        return max(self.class_counts) / max(1, min(self.class_counts))


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


class FinetunePlan(BaseModel):
    """What one fine-tuning run really uses: the config's explicit settings, the recipe for the rest."""

    recipe: RecipeName
    why: str
    epochs: float
    optim: OptimConfig
    head_learning_rate: float | None = Field(None, description="The head's own rate; None: optim.learning_rate.")
    class_weights: list[float] | None = Field(None, description="Loss weight per label id; None: unweighted.")
    label_smoothing: float = Field(0.0, description="Share of each target spread over the other classes.")
    max_length: int
    length_source: str
    eval_steps: int | None = Field(description="Evaluate every N steps; None: once per epoch.")
    total_steps: int
    from_config: list[str]
    reasons: list[str] = Field([], description="Why the data-sized values were chosen, for the log.")
    metric: str = "macro_f1"
    patience: int = 2

    def describe(self) -> str:
        """One sentence for the log: every resolved value, why the data-sized ones, which ones the config set."""
        o = self.optim
        evaluation = f"every {self.eval_steps} steps" if self.eval_steps else "every epoch"
        share = f" ({o.warmup_steps / self.total_steps:.1%} of the steps)" if self.total_steps else ""
        head = f"{self.head_learning_rate:.3g}" if self.head_learning_rate else "the same"
        weights = (
            f"weighted per class ({min(self.class_weights):.2f}-{max(self.class_weights):.2f})"
            if self.class_weights
            else "unweighted"
        )
        smoothing = f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else ""
        return (
            f"fine-tuning recipe '{self.recipe}' ({self.why}): learning rate {o.learning_rate:.3g}, "
            f"head learning rate {head}, {self.epochs:g} epochs at most ({self.total_steps} steps of "
            f"{o.batch_size}), warmup {o.warmup_steps} steps{share}, weight decay {o.weight_decay:g}, "
            f"loss {weights}{smoothing}, max_length {self.max_length} tokens ({self.length_source}), "
            f"evaluation {evaluation}, stopping after {self.patience} evaluations without a better validation "
            f"{self.metric} and keeping the best; "
            f"because {'; '.join(self.reasons) or 'the data asked for nothing else'}; "
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


def _data_choices(cfg: FinetuneConfig, name: RecipeName, shape: DataShape) -> dict:
    """Epochs, head learning rate and class weights sized to the data, each with its reason; settings in `cfg` win."""
    k, chosen, reasons = len(shape.class_counts), {}, []
    multi = name == "pretrained" and k >= MULTI_CLASS
    if cfg.epochs is None and multi:
        wanted = math.ceil(VIEWS_PER_CLASS / max(1.0, shape.median))
        chosen["epochs"] = float(min(MAX_EPOCHS, max(RECIPES[name].epochs, wanted)))
        reasons.append(
            f"{k} classes with a median of {shape.median:g} training examples: {chosen['epochs']:g} epochs show "
            f"the median class ~{VIEWS_PER_CLASS} times (between {RECIPES[name].epochs:g} and {MAX_EPOCHS})"
        )
    if cfg.early_stopping_patience is None and multi:
        chosen["patience_share"] = 0.5
        reasons.append(
            "a many-class head's validation score dips in the first half of the decaying schedule and peaks late: "
            "early stopping waits half the evaluations"
        )
    if cfg.optim.head_learning_rate is not None:
        chosen["head"] = cfg.optim.head_learning_rate
    elif multi:
        chosen["head"] = HEAD_LEARNING_RATE
        reasons.append(f"a new {k}-way head learns from random weights: its own rate {HEAD_LEARNING_RATE:g}")
    if cfg.label_smoothing is None and multi:
        chosen["smoothing"] = LABEL_SMOOTHING
        reasons.append(
            f"a {k}-way head fits its training examples long before validation peaks: label smoothing "
            f"{LABEL_SMOOTHING:g} keeps its targets soft"
        )
    balanced = cfg.class_weights == "balanced"
    if cfg.class_weights == "auto" and shape.imbalance >= IMBALANCE_RATIO:
        balanced = True
        reasons.append(
            f"the largest class is {shape.imbalance:.1f}x the smallest (>= {IMBALANCE_RATIO:g}x): "
            "the loss is weighted per class"
        )
    if balanced:
        chosen["weights"] = [round(shape.n_train / (k * max(1, c)), 4) for c in shape.class_counts]
    return chosen | {"reasons": reasons}


def _patience(share: float | None, total_steps: int, eval_steps: int | None, epochs: float) -> int:
    """Evaluations without improvement before stopping: `PATIENCE`, or `share` of all the run's evaluations."""
    if share is None:
        return PATIENCE
    evaluations = total_steps / eval_steps if eval_steps else epochs
    return max(PATIENCE, math.ceil(share * evaluations))


def plan_finetune(cfg: FinetuneConfig, data: int | DataShape, max_length: tuple[int, str]) -> FinetunePlan:
    """Fill every unset setting of `cfg` from its recipe and the data; warmup ratios become steps (the Trainer counts
    steps). `data` is the training split's shape, or only its size (then read as two balanced classes)."""
    shape = data if isinstance(data, DataShape) else DataShape.balanced(data)
    name, why = choose_recipe(cfg)
    recipe = RECIPES[name]
    optim = cfg.optim
    explicit = [f"optim.{k}" for k in ("learning_rate", "weight_decay", "warmup_steps", "warmup_ratio")]
    explicit += ["optim.head_learning_rate"]
    explicit = [k for k in explicit if getattr(optim, k.split(".")[1]) is not None]
    explicit += [k for k in ("epochs", "max_length", "eval_steps") if getattr(cfg, k) is not None]
    explicit += ["class_weights"] if cfg.class_weights != "auto" else []
    explicit += ["label_smoothing"] if cfg.label_smoothing is not None else []
    explicit += ["early_stopping_patience"] if cfg.early_stopping_patience is not None else []
    chosen = _data_choices(cfg, name, shape)
    epochs = cfg.epochs if cfg.epochs is not None else chosen.get("epochs", recipe.epochs)
    steps_per_epoch = max(1, math.ceil(shape.n_train / optim.batch_size) // optim.gradient_accumulation_steps)
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
    resolved = optim.model_dump(exclude={"warmup_ratio", "head_learning_rate"}) | {
        "learning_rate": optim.learning_rate if optim.learning_rate is not None else recipe.learning_rate,
        "weight_decay": optim.weight_decay if optim.weight_decay is not None else recipe.weight_decay,
        "warmup_steps": warmup,
    }
    return FinetunePlan(
        recipe=name,
        why=why,
        epochs=epochs,
        optim=OptimConfig(**resolved),
        head_learning_rate=chosen.get("head"),
        class_weights=chosen.get("weights"),
        label_smoothing=cfg.label_smoothing if cfg.label_smoothing is not None else chosen.get("smoothing", 0.0),
        max_length=max_length[0],
        length_source=max_length[1],
        eval_steps=eval_steps,
        total_steps=total,
        from_config=explicit,
        reasons=chosen["reasons"],
        metric=cfg.metric,
        patience=cfg.early_stopping_patience or _patience(chosen.get("patience_share"), total, eval_steps, epochs),
    )
