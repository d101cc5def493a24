"""The retrain config for a generator champion: instruction tuning from its checkpoint on the merged chats.

The generation twin of `retrain.retrain_config`: the `retrain` flow picks it when the champion's `zero2one.task`
tag says "generation". `base` holds the settings the champion was trained with (its recorded config, e.g. the
`configs/tiny-generation.yaml` preset's SFT settings), unless the caller asked for its own.
Pretraining is off and SFT starts from the champion's checkpoint with its own tokenizer, so
the new version is the champion tuned further on its training chats plus the window's new pairs; the pipeline's
gate then compares both on the same frozen prompts (the champion's test prompts plus the new test split).
"""

from __future__ import annotations

from flows.config import PipelineConfig, validate
from tasks.kinds.generation.sft_recipe import choose_sft_recipe
from tasks.monitoring.champion import Champion
from tasks.monitoring.retrain_data import RetrainData


def generation_retrain_config(
    base: PipelineConfig, champion: Champion, data: RetrainData, repretrain: bool
) -> PipelineConfig:
    """`base` (the champion's training settings, or the given ones) with the merged chats and, unless `repretrain`,
    SFT from the champion."""
    raw = base.model_dump(mode="json")
    raw["task"] = "generation"
    raw["generation_data"] |= {"source": data.uri, "format": "messages", "max_rows": None}
    raw["registry"]["model_name"] = champion.name
    raw["sft"]["recipe"] = choose_sft_recipe(base.sft)[0]  # the champion's recipe, not `pretrained` for its checkpoint
    if repretrain:  # a new decoder, even where `base` is a retrain's config (pretraining off, an old checkpoint)
        raw["causal_pretrain"]["enabled"] = True
        raw["sft"]["base_model"] = None
    else:
        checkpoint = champion.checkpoint_uri or champion.model_dir
        raw["generation_data"]["corpus"] = None  # only pretraining reads it
        raw["causal_pretrain"]["enabled"] = False
        raw["sft"]["base_model"] = checkpoint
        raw["generation_tokenizer"]["pretrained"] = checkpoint  # the checkpoint's own tokenizer and chat template
    return validate(raw, source="retrain config")
