"""The retrain settings of a question-answerer champion: fine-tuning from its checkpoint on its questions plus the
new labelled ones (`ModelKind.retrain_settings`; the `retrain` flow validates the result)."""

from __future__ import annotations

from pydantic import BaseModel

from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def retrain_settings(raw: dict, finetune: BaseModel, champion: Champion, data: RetrainData, repretrain: bool) -> dict:
    """`raw` (the champion's settings, or the given ones) with the merged folder and the champion's checkpoint.
    The folder holds the champion's (already sampled) training questions, so none are sampled again. `finetune`
    (the typed `answer_finetune` section) holds nothing to change: a reader has one recipe. `repretrain`: the
    from-scratch path instead, a new tokenizer and encoder on the merged questions."""
    raw["task"] = "answers"
    raw["answer_data"] |= {"source": data.uri, "max_train_questions": None}
    raw["pretrain"]["enabled"] = repretrain
    raw["answer_finetune"]["base_model"] = None if repretrain else champion.checkpoint_uri or champion.model_dir
    if not repretrain:
        raw["tokenizer"]["pretrained"] = None  # the checkpoint's own (the config fills it in from base_model)
    return raw
