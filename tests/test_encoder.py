"""A classifier built on our masked-LM encoder: the expected new head is not reported, anything else is."""

from __future__ import annotations

import logging

from safetensors.torch import load_file, save_file

from models.encoder import EncoderShape, build_classifier, build_masked_lm


def _encoder(path) -> str:
    build_masked_lm(EncoderShape(num_layers=1), vocab_size=50, pad_token_id=0).save_pretrained(path)
    return str(path)


def test_the_new_head_is_expected_and_not_reported(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        model = build_classifier(_encoder(tmp_path), ["neg", "pos"])
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert not [r for r in caplog.records if "LOAD REPORT" in r.getMessage() or "missing" in r.getMessage()]


def test_a_checkpoint_missing_encoder_weights_is_reported(tmp_path, caplog):
    path = _encoder(tmp_path)
    weights = load_file(f"{path}/model.safetensors")
    lost = next(k for k in weights if "attention.self.query.weight" in k)
    save_file({k: v for k, v in weights.items() if k != lost}, f"{path}/model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING):
        build_classifier(path, ["neg", "pos"])
    assert any("query.weight" in r.getMessage() for r in caplog.records)
