"""Entity scores, baselines and monitor descriptors (#26) on tiny hand-made sentences."""

from __future__ import annotations

import pytest

from tasks.kinds.entities.baselines import CRFConfig, CRFTagger, Memorizer, word_features
from tasks.kinds.entities.metrics import entity_scores
from tasks.kinds.entities.monitor import descriptor_rows, descriptors, type_shares, vocabulary
from tasks.kinds.entities.reader import Sentence


def _s(text: str) -> Sentence:
    """'New/B-loc York/I-loc is/O' -> a Sentence."""
    pairs = [w.rsplit("/", 1) for w in text.split()]
    return Sentence([w for w, _ in pairs], [t for _, t in pairs])


TRAIN = [
    _s("I/O love/O New/B-loc York/I-loc ./O"),
    _s("Bob/B-per moved/O to/O New/B-loc York/I-loc"),
    _s("New/O ideas/O from/O Bob/B-per"),
    _s("Apple/B-org hired/O Bob/B-per"),
    _s("an/O apple/O a/O day/O"),
]


def test_scores_are_strict_a_partial_span_or_a_wrong_type_is_a_miss():
    gold = [["B-loc", "I-loc", "O", "B-per"]]
    assert entity_scores(gold, gold).micro.f1 == 1.0
    partial = entity_scores(gold, [["B-loc", "O", "O", "B-org"]])
    assert partial.micro.precision == 0.0 and partial.micro.recall == 0.0
    half = entity_scores(gold, [["B-loc", "I-loc", "O", "O"]])
    assert half.per_type["loc"].f1 == 1.0 and half.per_type["per"].f1 == 0.0
    assert half.micro.recall == 0.5 and half.macro.f1 == 0.5


def test_scores_refuse_sequences_of_different_lengths():
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])


def test_memorization_tags_whole_phrases_seen_as_entities_more_often_than_not():
    mem = Memorizer().fit(TRAIN)
    assert mem.predict([["Bob", "loves", "New", "York"]]) == [["B-per", "O", "B-loc", "I-loc"]]
    # 'Apple' was an organisation once and 'apple' never: case matters; 'New' alone was an entity 0 of 1 times
    assert mem.predict([["apple", "New", "Apple"]]) == [["O", "O", "B-org"]]


def test_the_crf_learns_from_word_features_and_returns_one_tag_per_word():
    crf = CRFTagger(CRFConfig(max_iterations=50)).fit(TRAIN * 5)
    out = crf.predict([["Bob", "moved", "to", "New", "York"], ["x"]])
    assert out[0] == ["B-per", "O", "O", "B-loc", "I-loc"] and len(out[1]) == 1
    feats = word_features(["@bob", "Hi"], 0)
    assert feats["at"] and feats["1:istitle"] and feats["-1:edge"]


def test_descriptors_count_entities_per_type_unknown_words_and_confidence():
    vocab = vocabulary(TRAIN)
    row = descriptors(["Bob", "met", "Zed", "in", "Paris"], ["B-per", "O", "B-per", "O", "B-loc"],
                      [0.9, 1.0, 0.5, 1.0, 0.6], ["loc", "org", "per"], vocab)  # fmt: skip
    assert row["entities"] == 3 and row["entities_per"] == 2 and row["entities_org"] == 0
    assert row["unknown_word_share"] == pytest.approx(4 / 5)  # met, Zed, in, Paris never seen
    assert row["mean_confidence"] == pytest.approx(0.8)
    rows = descriptor_rows([(["a"], ["O"], [1.0]), (["Bob"], ["B-per"], [0.7])], ["loc", "per"], vocab)
    assert type_shares(rows, ["loc", "per"]) == {"loc": 0.0, "per": 1.0}
    with pytest.raises(ValueError, match="one of each per word"):
        descriptors(["a"], [], [], ["per"], vocab)
