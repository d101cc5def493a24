"""The instruction-tuning settings (`sft:` in a preset): what the user sets, and what is left to the recipe.

Kept apart from the stage (`sft.py`) and the recipe (`sft_recipe.py`), which both read them, so neither imports
the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.lora import LoraSettings
from tasks.training.settings import RecipeOptim, TrainingConfig


class SftOptim(RecipeOptim):
    """The optimiser settings of instruction tuning; learning rate and warmup left unset come from the recipe."""

    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate; unset: the recipe's.")
    warmup_steps: int | None = Field(None, ge=0, description="Linear warmup steps; wins over warmup_ratio.")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="Warmup as a share of all steps.")


class SftConfig(TrainingConfig):
    """Instruction tuning. The decoder is the pretraining output unless `base_model` is set. Settings left unset
    (null) come from the recipe (`tasks/kinds/generation/sft_recipe.py`); a value given in a preset or with `--set`
    wins."""

    base_model: str | None = Field(
        None,
        description="Causal-LM folder, hub name, pkg:<package>, or a GGUF file / folder with one (converted once "
        "per workspace); default: the pretrained decoder.",
    )
    recipe: Literal["auto", "pretrained", "from-scratch"] = Field(
        "auto", description="Where unset settings come from; auto: pretrained when base_model is set."
    )
    method: Literal["full", "lora"] | None = Field(None, description="Unset: the recipe's (pretrained: lora).")
    epochs: float | None = Field(None, gt=0, description="Passes over the training chats; unset: the recipe's.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (wins over epochs).")
    max_steps_cpu: int | None = Field(
        None, gt=0, description="Step cap without a GPU (unset: the recipe's; pretrained: 40)."
    )
    max_length: int | None = Field(
        None, gt=8, description="Tokens per chat (unset: the model's context, or the data's p99 when pretrained)."
    )
    on_too_long: Literal["error", "truncate", "drop"] | None = Field(
        None, description="Chats longer than max_length: stop, cut the end, or drop them (counted)."
    )
    batching: Literal["padding_free", "group_by_length", "pad"] = Field(
        "padding_free", description="padding_free: chats end to end, no pad tokens; or padded batches."
    )
    lora: LoraSettings | None = Field(None, description="Adapters (method lora); unset: the recipe's.")
    neftune_noise_alpha: float | None = Field(
        None, ge=0, description="NEFTune: noise on the input embeddings while training (0: none); unset: the recipe's."
    )
    optim: SftOptim = SftOptim(batch_size=16)
