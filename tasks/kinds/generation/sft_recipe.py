"""Instruction-tuning recipes: the values an sft run uses for the settings its config leaves unset (null).

`from-scratch` is what the tiny decoders the causal_pretrain stage trains want (the tiny-generation preset's
measured values: full fine-tuning, learning rate 1e-3, 3 epochs, errors on chats past the context).
`pretrained` is for a real pretrained instruct model (`sft.base_model` set): LoRA (peft) with rank 16, alpha 32
on every linear layer of the blocks (attention and MLP, as QLoRA found best), learning rate 2e-4 warmed up over
3% of the steps, one epoch, and `max_length` the 99th percentile of the training chats' token lengths (capped by
the model's context) with the longer 1% truncated, so a few long answers do not set every batch's width.
On a machine without a GPU the pretrained recipe stops after `max_steps_cpu` optimizer steps (the log says so):
a 135M model took 60-90 s a step of 8 chats on 2 cores at load ~10, so an epoch of thousands would take hours.

The rule (as in `tasks/kinds/classification/recipes.py` for classifiers): a value set in a preset or with `--set`
always wins.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from core.errors import PipelineInputError
from models.lora import LoraSettings
from tasks.kinds.generation.sft_config import SftConfig
from tasks.training.settings import OptimConfig

SftRecipeName = Literal["pretrained", "from-scratch"]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SftRecipe(BaseModel):
    method: Literal["full", "lora"]
    epochs: float
    lora: LoraSettings
    learning_rate: float
    warmup_steps: int | None = None
    warmup_ratio: float = 0.0
    on_too_long: Literal["error", "truncate", "drop"]
    length_from_data: bool  # max_length unset: the data's p99 (else the model's context)
    max_steps_cpu: int | None = None
    neftune_noise_alpha: float = 0.0


SFT_RECIPES: dict[str, SftRecipe] = {
    "from-scratch": SftRecipe(
        method="full",
        epochs=3,
        lora=LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
        learning_rate=1e-3,
        warmup_steps=20,
        on_too_long="error",
        length_from_data=False,
    ),
    "pretrained": SftRecipe(
        method="lora",
        epochs=1,
        lora=LoraSettings(r=16, alpha=32, dropout=0.05, target_modules=ALL_LINEAR),
        learning_rate=2e-4,
        warmup_ratio=0.03,
        on_too_long="truncate",
        length_from_data=True,
        max_steps_cpu=40,
    ),
}


def choose_sft_recipe(cfg: SftConfig) -> tuple[SftRecipeName, str]:
    """The recipe `cfg` asks for, and why: `auto` means pretrained exactly when `base_model` names a checkpoint."""
    if cfg.recipe != "auto":
        return cfg.recipe, "sft.recipe"
    if cfg.base_model:
        return "pretrained", "sft.base_model is set"
    return "from-scratch", "the decoder comes from the causal_pretrain stage"


class SftPlan(BaseModel):
    """The settings a run trains with, everything resolved, and why (for the log and the stage report)."""

    recipe: SftRecipeName
    method: Literal["full", "lora"]
    epochs: float
    max_steps: int  # -1: the epochs decide
    lora: LoraSettings
    optim: OptimConfig
    on_too_long: Literal["error", "truncate", "drop"]
    max_length: int
    neftune_noise_alpha: float = 0.0
    reasons: list[str]

    def describe(self) -> str:
        return f"recipe {self.recipe}: " + "; ".join(self.reasons)


def plan_sft(cfg: SftConfig, n_train: int, context: int, p99: int | None, on_gpu: bool) -> SftPlan:
    """Resolve `cfg` against its recipe: `n_train` chats, the model's `context`, the chats' p99 token length."""
    name, why = choose_sft_recipe(cfg)
    r = SFT_RECIPES[name]
    reasons = [why]
    if cfg.max_length is not None:
        max_length, how = min(cfg.max_length, context), "sft.max_length"
    elif r.length_from_data and p99 is not None:
        max_length, how = min(p99, context), f"99th percentile of the training chats ({p99} tokens)"
    else:
        max_length, how = context, "the model's context"
    reasons.append(f"max_length {max_length} ({how}; context {context})")
    epochs = cfg.epochs if cfg.epochs is not None else r.epochs
    max_steps = cfg.max_steps or -1
    if max_steps < 0 and not on_gpu and (cap := cfg.max_steps_cpu or r.max_steps_cpu):
        max_steps = cap
        reasons.append(f"capped at {cap} steps on CPU (sft.max_steps_cpu; a GPU trains {epochs:g} epoch(s))")
    batch = cfg.optim.batch_size * cfg.optim.gradient_accumulation_steps
    steps = math.ceil(n_train / batch * epochs)
    steps = min(steps, max_steps) if max_steps > 0 else steps
    warmup = cfg.optim.warmup_steps
    if warmup is None and cfg.optim.warmup_ratio is None and r.warmup_steps is not None:
        warmup = r.warmup_steps
    elif warmup is None:
        ratio = cfg.optim.warmup_ratio if cfg.optim.warmup_ratio is not None else r.warmup_ratio
        warmup = math.ceil(ratio * steps)
    lr = cfg.optim.learning_rate or r.learning_rate
    neftune = cfg.neftune_noise_alpha if cfg.neftune_noise_alpha is not None else r.neftune_noise_alpha
    if neftune:
        reasons.append(f"NEFTune noise alpha {neftune:g}")
    reasons.append(f"{steps} steps of {batch} chats, learning rate {lr:g}, warmup {warmup} steps")
    optim = OptimConfig(
        **(cfg.optim.model_dump(exclude={"warmup_ratio"}) | {"learning_rate": lr, "warmup_steps": warmup})
    )
    return SftPlan(
        recipe=name,
        method=cfg.method or r.method,
        epochs=epochs,
        max_steps=max_steps,
        lora=cfg.lora or r.lora,
        optim=optim,
        on_too_long=cfg.on_too_long or r.on_too_long,
        max_length=max_length,
        neftune_noise_alpha=neftune,
        reasons=reasons,
    )


def check_prompts_fit(split, tok, context: int, name: str) -> None:
    """An instruction longer than the model's whole context cannot be answered (whatever `on_too_long` says about
    answers cut at `max_length`): stop before training, naming the first such row."""
    for row in split:
        prompt = tok.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        if n >= context:
            raise PipelineInputError(
                f"{row['_file']}, line {row['_line']}, field 'messages': the instruction is {n} tokens, longer than "
                f"the model's context of {context} ({name} split; value {row['messages'][-2]['content'][:60]!r}...). "
                "Shorten it or remove the row."
            )
