"""Long texts (#23): `finetune.truncation=head_tail` keeps start and end; every predictor cuts as training did.

A tiny random BERT classifier saved the way the finetune stage saves one (the rule in its config.json); no training:
what is checked is which tokens reach the model, in fine-tuning (`_tokenize`), in `TextClassifier` (evaluation,
pyfunc, serving) and in `OnnxClassifier` (the ONNX runtime that serving prefers).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from models.classifier import TextClassifier
from models.onnx_classifier import OnnxClassifier
from models.onnx_export import export_onnx
from models.truncation import Truncation
from tasks.kinds.classification.finetune import _tokenize
from tasks.monitoring.model_view import model_outputs
from tasks.training.tokenizer import TokenizerConfig, _train_wordpiece

WORDS = [f"w{i}" for i in range(40)]
LONG = " ".join(WORDS)  # 40 words, each its own token: 42 ids with [CLS] and [SEP]
WINDOW = 16


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = _train_wordpiece([LONG, "short text", "w1 w2"] * 3, TokenizerConfig(vocab_size=200, min_frequency=1))
    config = BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=2, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.config.zero2one_truncation = Truncation.for_window("head_tail", WINDOW).to_config()
    path = tmp_path_factory.mktemp("clf")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok


def test_head_tail_keeps_the_first_and_last_tokens(model_dir):
    _, tok = model_dir
    full = tok(LONG)["input_ids"]
    assert len(full) == 42
    cut = _tokenize({"text": [LONG, "short text"]}, tok, WINDOW, "head_tail")
    ids = cut["input_ids"][0]
    head = Truncation.for_window("head_tail", WINDOW).head
    assert head == 4 and len(ids) == WINDOW and cut["length"][0] == WINDOW
    assert ids == full[:head] + full[-(WINDOW - head) :]
    assert tok.convert_ids_to_tokens([ids[0], ids[-1], ids[-2]]) == ["[CLS]", "[SEP]", "w39"]
    assert cut["input_ids"][1] == tok("short text")["input_ids"]  # a text that fits is untouched
    head_only = _tokenize({"text": [LONG]}, tok, WINDOW, "head")["input_ids"][0]
    assert tok.convert_ids_to_tokens(head_only[-2:]) == ["w13", "[SEP]"]  # the default still cuts the tail


def test_prediction_cuts_as_training_did(model_dir, tmp_path):
    path, tok = model_dir
    texts = [LONG, "short text", " ".join(reversed(WORDS))]
    trained = _tokenize({"text": texts}, tok, WINDOW, "head_tail")["input_ids"]
    clf = TextClassifier(path)
    enc, truncated = clf.encode(texts)
    seen = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"], strict=True)]
    assert seen == trained
    assert list(truncated) == [True, False, True]
    probs, flags = clf.classify(texts)
    assert flags.tolist() == [True, False, True]
    monitored, _ = model_outputs(clf, texts)  # the monitor's view of the champion sees the same tokens
    np.testing.assert_allclose(monitored, probs, atol=1e-5)
    # The ONNX runtime cuts the same tokens and so gives the same logits.
    export_onnx(path, tmp_path / "model.onnx")
    onnx = OnnxClassifier(tmp_path / "model.onnx", path)
    feeds, onnx_flags = onnx._encode(texts)
    onnx_seen = [row[mask == 1].tolist() for row, mask in zip(feeds["input_ids"], feeds["attention_mask"], strict=True)]
    assert onnx_seen == trained and onnx_flags == [True, False, True]
    np.testing.assert_allclose(onnx.logits(texts), clf.logits(texts), atol=1e-4)


def test_evaluation_reports_the_share_of_cut_texts(model_dir, tmp_path):
    """The evaluate stage's scoring counts the test texts longer than the window; the summary and card say so."""
    import datasets

    from core.workspace import Workspace
    from tasks.kinds.classification.baseline import train_baseline
    from tasks.kinds.classification.evaluate import EvaluateConfig, _score_all
    from tasks.kinds.classification.truncation_report import truncation_line
    from tasks.results import EvalReport, FinetunedModel

    path, _ = model_dir
    rows = {"text": [LONG, "short text", "w1 w2", " ".join(reversed(WORDS))] * 3, "label": [0, 1, 1, 0] * 3}
    splits = datasets.DatasetDict({name: datasets.Dataset.from_dict(rows) for name in ("train", "validation", "test")})
    model = FinetunedModel(
        uri=str(path), base_model="x", method="full", global_step=1, resumed_from_step=0, mlflow_run_id="r",
        labels=["a", "b"], best_metric=0.5, metric="macro_f1",
    )  # fmt: skip
    baseline = train_baseline(splits, ["a", "b"], "fp", Workspace(root=str(tmp_path)))
    *_, (truncated, rule) = _score_all(EvaluateConfig(), splits, ["a", "b"], model, baseline)
    assert truncated == 6 and rule == "head_tail: the first 4 and the last 12 of 16 tokens"
    fields = {"uri": "u", "passed": True, "reasons": [], "mlflow_run_id": "r", "test_size": 12}
    scores = {k: {"accuracy": 0.5, "macro_f1": 0.5, "per_class": {}} for k in ("model", "majority", "tfidf_logreg")}
    report = EvalReport(**fields, **scores, truncated=truncated, truncation=rule)
    assert truncation_line(report).startswith("Long texts: 6 of 12 test texts (50.0%) were longer than the model's")
