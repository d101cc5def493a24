"""The retrain settings of a classifier champion: fine-tuning from its checkpoint on its data plus the window's
newly labeled rows (`ModelKind.retrain_settings`; the `retrain` flow validates the result)."""

from __future__ import annotations

from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.recipes import choose_recipe
from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def retrain_settings(raw: dict, finetune: FinetuneConfig, champion: Champion, data: RetrainData, repretrain: bool):
    """`raw` (the champion's settings, or the given ones, as a dict) with the merged data and, unless `repretrain`,
    fine-tuning from the champion's checkpoint. `finetune` is the typed section of `raw`."""
    raw["data"] |= {
        "source": data.uri,
        "text_column": "text",
        "label_column": "label",
        "labels": data.labels,
        "max_rows": None,
    }
    if repretrain:  # a new encoder, even where `raw` is a retrain's config (pretraining off, an old checkpoint)
        raw["pretrain"]["enabled"] = True
        raw["finetune"]["base_model"] = None
    else:
        raw["data"]["corpus"] = None  # only pretraining reads it
        raw["pretrain"]["enabled"] = False
        raw["finetune"]["base_model"] = champion.checkpoint_uri or champion.model_dir
        # The champion's checkpoint is trained further with the recipe it was made with, not the pretrained one.
        raw["finetune"]["recipe"] = choose_recipe(finetune)[0]
        raw["tokenizer"]["pretrained"] = None  # the checkpoint's own tokenizer
    return raw
