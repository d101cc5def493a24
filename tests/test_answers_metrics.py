"""SQuAD v1.1 and CMRC 2018 scores against hand-computed examples."""

import pytest

from tasks.kinds.answers.metrics import mixed_segmentation, normalize_answer, score, score_one


def test_squad_normalisation_drops_case_punctuation_articles():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a day") == "apple day"


def test_squad_em_and_f1_hand_computed():
    # pred "denver broncos win" vs gold "broncos": common 1, precision 1/3, recall 1 -> F1 0.5
    assert score_one("Denver Broncos win", ["Broncos"]) == (0.0, pytest.approx(0.5))
    # max over golds: the second gold matches exactly
    assert score_one("the Broncos", ["Denver", "Broncos."]) == (1.0, 1.0)


def test_no_answer_scores_only_an_empty_prediction():
    assert score_one("", []) == (1.0, 1.0)
    assert score_one("Paris", []) == (0.0, 0.0)


def test_corpus_score_in_percent_and_missing_prediction_is_empty():
    result = score({"a": "Paris"}, {"a": ["Paris"], "b": ["London"]})
    assert result == {"exact_match": 50.0, "f1": 50.0, "n": 2}


def test_cmrc_segments_chinese_by_character_and_keeps_words():
    assert mixed_segmentation("光荣和ω force公司") == ["光", "荣", "和", "ω", "force", "公", "司"]


def test_cmrc_scores_hand_computed():
    # punctuation dropped: EM 1
    assert score_one("光荣和ω-force", ["光荣和ω-force。"], "cmrc") == (1.0, 1.0)
    # pred 北京大学 vs gold 北京: lcs 2, precision 2/4, recall 2/2 -> F1 2/3
    em, f1 = score_one("北京大学", ["北京"], "cmrc")
    assert em == 0.0 and f1 == pytest.approx(2 / 3)
    # longest common *contiguous* run: 北大 vs 北京大学 shares only runs of 1 -> lcs 1, P 1/2, R 1/4 -> F1 1/3
    assert score_one("北大", ["北京大学"], "cmrc")[1] == pytest.approx(1 / 3)
