"""The finetune_entities stage's settings (`entity_finetune:` in a preset).

Apart from the stage so that the retrain settings and the pipeline config stand on this leaf, not on the trainer.
"""

from __future__ import annotations

from pydantic import Field

from tasks.training.settings import OptimConfig, TrainingConfig


class EntityFinetuneConfig(TrainingConfig):
    """Fine-tune a token classifier. Sized for CPU: MiniLM-L6 on WNUT-17 runs an epoch in minutes on 2 cores."""

    base_model: str | None = Field(
        None, description="Encoder checkpoint: a folder, a hub name or pkg:<module>; default: the pretrained encoder."
    )
    epochs: float = Field(3.0, gt=0, description="Passes over the training sentences (the best epoch is kept).")
    max_length: int | None = Field(
        None, gt=8, description="Sub-tokens per window; unset: the longest training sentence, within the model."
    )
    overlap: int = Field(16, ge=0, description="Sub-tokens consecutive windows of a long sentence share.")
    warmup_share: float = Field(0.1, ge=0, lt=1, description="Linear warmup as a share of all steps.")
    optim: OptimConfig = OptimConfig(batch_size=16, learning_rate=1e-4)  # small encoders want more than 5e-5
