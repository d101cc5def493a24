"""The retrain settings of a tagger champion: fine-tuning from its checkpoint on its sentences plus the new
labelled ones (`ModelKind.retrain_settings`; the `retrain` flow validates the result)."""

from __future__ import annotations

from tasks.kinds.entities.config import EntityFinetuneConfig
from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def retrain_settings(
    raw: dict, finetune: EntityFinetuneConfig, champion: Champion, data: RetrainData, repretrain: bool
) -> dict:
    """`raw` (the champion's settings, or the given ones) with the merged folder and the champion's checkpoint.
    `repretrain`: the from-scratch path instead, a new tokenizer and encoder on the merged sentences."""
    raw["task"] = "entities"
    raw["entity_data"] |= {"source": data.uri, "max_train_sentences": None}
    raw["pretrain"]["enabled"] = repretrain
    raw["entity_finetune"]["base_model"] = None if repretrain else champion.checkpoint_uri or champion.model_dir
    if not repretrain:
        raw["tokenizer"]["pretrained"] = None  # the checkpoint's own (the config fills it in from base_model)
    return raw
