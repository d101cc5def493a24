"""The retrain settings of a generator champion: instruction tuning from its checkpoint on its training chats plus
the window's new prompt/answer pairs (`ModelKind.retrain_settings`; the `retrain` flow validates the result).

Pretraining is off and SFT starts from the champion's checkpoint with its own tokenizer, so the new version is the
champion tuned further; the pipeline's gate then compares both on the same frozen prompts (the champion's test
prompts plus the new test split).
"""

from __future__ import annotations

from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.sft_recipe import choose_sft_recipe
from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def retrain_settings(raw: dict, sft: SftConfig, champion: Champion, data: RetrainData, repretrain: bool) -> dict:
    """`raw` (the champion's settings, or the given ones, as a dict) with the merged chats and, unless `repretrain`,
    SFT from the champion. `sft` is the typed section of `raw`."""
    raw["task"] = "generation"
    raw["generation_data"] |= {"source": data.uri, "format": "messages", "max_rows": None}
    raw["sft"]["recipe"] = choose_sft_recipe(sft)[0]  # the champion's recipe, not `pretrained` for its checkpoint
    if repretrain:  # a new decoder, even where `raw` is a retrain's config (pretraining off, an old checkpoint)
        raw["causal_pretrain"]["enabled"] = True
        raw["sft"]["base_model"] = None
    else:
        checkpoint = champion.checkpoint_uri or champion.model_dir
        raw["generation_data"]["corpus"] = None  # only pretraining reads it
        raw["causal_pretrain"]["enabled"] = False
        raw["sft"]["base_model"] = checkpoint
        raw["generation_tokenizer"]["pretrained"] = checkpoint  # the checkpoint's own tokenizer and chat template
    return raw
