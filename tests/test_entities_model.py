"""Entity model (#26) on a tiny random BERT: sub-word labels, windows instead of truncation, entities with offsets,
and ONNX fp32/int8 parity measured through the same tagger."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from transformers import BertConfig, BertModel, BertTokenizer  # noqa: E402

from models.token_classifier import owners, plan, windows  # noqa: E402
from tasks.kinds.entities.reader import Sentence  # noqa: E402
from tasks.kinds.entities.windows import IGNORE, labelled  # noqa: E402

# Trains real (tiny) models: minutes on a loaded 2-core machine, so with the other model-kind tests in
# `make test-kinds`, not in `make test`.
pytestmark = pytest.mark.kinds

NAMES = ["Bob", "Alice", "Carol"]
PLACES = ["Paris", "Berlin", "Tokyo"]
FILLER = ["we", "met", "in", "today", "and", "then", "went", "home", "with", "."]


def _sentence(rng: random.Random, n_filler: int = 4) -> Sentence:
    """Filler words with a name and a place at random positions (a model cannot learn 'the first word is a name')."""
    words, tags = rng.sample(FILLER, n_filler), ["O"] * n_filler
    for kind, pool in (("person", NAMES), ("location", PLACES)):
        at = rng.randint(0, len(words))
        words.insert(at, rng.choice(pool))
        tags.insert(at, f"B-{kind}")
    return Sentence(words, tags)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 2-layer, 32-wide BERT encoder whose vocabulary splits 'Berlin' and 'Tokyo' into several sub-words."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[w.lower() for w in NAMES + FILLER], "paris"]
    vocab += ["ber", "##lin", "to", "##ky", "##o"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def trained(checkpoint, tmp_path_factory):
    from tasks.kinds.entities.train import EntityTrainConfig, train_entities

    rng = random.Random(0)
    train = [_sentence(rng, rng.randint(1, 6)) for _ in range(64)]
    out = tmp_path_factory.mktemp("entity-model")
    cfg = EntityTrainConfig(checkpoint=str(checkpoint), epochs=5, learning_rate=5e-3, batch_size=8, max_length=12)
    meta = train_entities(train, train[:8], out, cfg)
    return out, meta


def test_windows_overlap_fit_the_budget_and_cover_every_word():
    counts = [1, 3, 1, 1, 2, 1, 1, 4, 1]
    spans = plan(counts, budget=5, overlap=2)
    assert spans[0][0] == 0 and spans[-1][1] == len(counts)
    assert all(sum(counts[s:e]) <= 5 for s, e in spans)
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "consecutive windows share words"
    assert plan([9], budget=5, overlap=2) == [(0, 1)], "a word longer than the budget still gets a window"


def test_only_the_first_sub_token_of_a_word_is_labelled(checkpoint):
    tok = BertTokenizer.from_pretrained(str(checkpoint))
    win = windows(tok, [["Bob", "Berlin", "Tokyo"]], max_length=16, overlap=2)[0]
    feats = labelled(win, [1, 2, 3])
    assert tok.convert_ids_to_tokens(win.input_ids) == ["[CLS]", "bob", "ber", "##lin", "to", "##ky", "##o", "[SEP]"]
    assert feats["labels"] == [IGNORE, 1, 2, IGNORE, 3, IGNORE, IGNORE, IGNORE]


def test_a_sentence_longer_than_the_model_is_windowed_not_truncated(checkpoint):
    tok = BertTokenizer.from_pretrained(str(checkpoint))
    words = (["Bob", "met", "Carol", "in", "Tokyo"] * 8)[:37]
    wins = windows(tok, [words], max_length=12, overlap=4)
    assert len(wins) > 3 and all(len(w.input_ids) <= 12 for w in wins)
    owned = owners(wins, [len(words)])[0]
    assert all(k >= 0 for k, _ in owned) and len(owned) == 37


def test_fine_tuning_learns_the_entities_and_keeps_the_best_dev_epoch(trained):
    out, meta = trained
    assert meta["max_length"] == 12 and meta["labels"][0] == "O"
    assert meta["best_dev_f1"] == max(meta["dev_f1_by_epoch"]) and meta["best_dev_f1"] > 0.5
    assert (out / "entities.json").is_file() and (out / "config.json").is_file()


def test_entities_come_with_type_character_offsets_text_and_score_even_past_the_model_length(trained):
    from models.token_classifier import Tagger

    tagger = Tagger.load(trained[0])
    text = "Alice met Bob in Berlin today and then we went home with Carol in Tokyo ."
    found = tagger.entities([text, ""])
    assert found[1] == []
    assert [(e.type, e.text) for e in found[0] if e.type == "person"][-1] == ("person", "Carol"), "last word tagged"
    for e in found[0]:
        assert text[e.start : e.end] == e.text and 0 < e.score <= 1


def test_int8_onnx_agrees_with_pytorch_on_the_tokens(trained, tmp_path):
    from models.token_classifier import Tagger
    from tasks.kinds.entities.onnx_int8 import agreement, export_token_classifier

    files = export_token_classifier(trained[0], tmp_path, int8_weights=True)
    rng = random.Random(1)
    words = [_sentence(rng, rng.randint(2, 9)).words for _ in range(30)]
    reference = [tags for tags, _ in Tagger.load(trained[0]).tag(words)]
    fp32 = [tags for tags, _ in Tagger.load(trained[0], files.fp32).tag(words)]
    assert agreement(reference, fp32) == {"tokens": 1.0, "entity_tokens": 1.0}
    int8 = agreement(reference, [tags for tags, _ in Tagger.load(trained[0], files.int8).tag(words)])
    assert int8["tokens"] >= 0.95 and int8["entity_tokens"] >= 0.9
    weights = agreement(reference, [tags for tags, _ in Tagger.load(trained[0], files.int8_weights).tag(words)])
    assert weights["entity_tokens"] >= int8["entity_tokens"] and weights["tokens"] >= 0.99
    assert Path(files.int8_weights).stat().st_size < Path(files.fp32).stat().st_size
    assert agreement([["B-x", "O", "O", "O"]], [["O", "O", "O", "O"]]) == {"tokens": 0.75, "entity_tokens": 0.0}


def test_the_pyfunc_body_returns_one_row_of_entities_per_text(trained):
    from types import SimpleNamespace

    import pandas as pd

    from models.token_classifier import EntityTaggerPyfunc

    body = EntityTaggerPyfunc()
    body.load_context(SimpleNamespace(artifacts={"model": str(trained[0])}))
    out = body.predict(None, pd.DataFrame({"text": ["we met Bob in Paris .", "home"]}))
    assert list(out.columns) == ["entities"] and len(out) == 2
    assert set(out["entities"][0][0]) == {"type", "start", "end", "text", "score"}
