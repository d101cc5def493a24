"""LoRA adapters through `peft`: attach for training, merge for saving."""

from __future__ import annotations

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedModel


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, gt=0, description="Rank of the adapters.")
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(["query", "value"], description="Attention projections to adapt.")


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """Freeze the encoder, add adapters; the classification head stays trainable (peft SEQ_CLS)."""
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
    )
    return get_peft_model(model, config)


def merge_lora(model: PeftModel) -> PreTrainedModel:
    """Fold the adapters into the weights, so the saved model is a plain transformers model."""
    return model.merge_and_unload()
