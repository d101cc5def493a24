"""What every training stage's config has: optimiser settings and processes per machine, with the rule that the
batch splits evenly across them.

Apart from `common.py` (Trainer arguments, the MLflow run a job trains in) so that a stage's config module stands on
pydantic and this leaf alone: the kinds' configs import these from here. `common.py` re-exports them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.retry import RetryPolicy
from models.device import Precision


class OptimConfig(BaseModel):
    """Optimiser and loop settings common to pretraining and fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        32, gt=0, description="Examples per forward pass; split across the processes when nproc_per_node > 1."
    )
    learning_rate: float = Field(
        5e-4, gt=0, description="Peak learning rate (pretraining's default; fine-tuning's comes from its recipe)."
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(0, ge=0)
    gradient_accumulation_steps: int = Field(1, ge=1)
    precision: Precision = Field("auto", description="auto: bf16/fp16 on GPU, fp32 on CPU.")
    seed: int = 0


class RecipeOptim(OptimConfig):
    """Optimiser settings whose unset (null) values come from a recipe (fine-tuning, instruction tuning)."""

    @model_validator(mode="before")
    @classmethod
    def _from_shared_optim(cls, data):
        """Code that passes the shared `OptimConfig` keeps only what it set: the rest stays with the recipe."""
        if isinstance(data, OptimConfig) and not isinstance(data, cls):
            return data.model_dump(exclude_unset=True)
        return data


class TrainingConfig(BaseModel):
    """What every training stage's config has: optimiser settings, processes per machine, retries; the batch must
    split evenly across the processes. Each stage sets its own `optim` default."""

    model_config = ConfigDict(extra="forbid")

    optim: OptimConfig = OptimConfig()
    nproc_per_node: int = Field(
        1, ge=1, description="Training processes on this machine (one per GPU); more than 1 runs torchrun."
    )
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _batch_splits(self) -> TrainingConfig:
        check_divisible(self.optim, self.nproc_per_node)
        return self


def check_divisible(optim: OptimConfig, nproc_per_node: int) -> None:
    """The batch is split evenly across processes; raises ValueError (for a config validator) otherwise."""
    if optim.batch_size % nproc_per_node:
        raise ValueError(
            f"optim.batch_size ({optim.batch_size}) must be a multiple of nproc_per_node ({nproc_per_node}): "
            "each process takes an equal share of every batch"
        )
