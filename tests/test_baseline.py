"""The TF-IDF baseline (fit, ONNX export, predictor), the quality rules shared by evaluate and gate, and the
gate's champion lookup on a real MLflow registry. Fast: no pipeline run (the gate end to end is in
tests/test_promotion.py)."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models import baseline
from models.baseline_onnx import BaselineClassifier
from tasks.judging.gate_rules import newest_rule
from tasks.judging.quality import baseline_rule
from tasks.kinds.classification.evaluate import EvaluateConfig, verdict_rules
from tasks.registry.versions import champion_version
from tasks.results import Scores
from tasks.stage_configs import GateConfig, QualityBar

POS = ["great phone, love it", "excellent battery and screen", "works perfectly, very happy", "best purchase"]
NEG = ["broke after a day", "terrible screen, awful", "stopped working, very sad", "worst purchase ever"]
ZH_POS = ["这家酒店的服务非常好", "房间干净，早餐很好吃", "位置很方便，下次还来"]
ZH_NEG = ["房间太脏了，服务很差", "早餐难吃，不推荐", "隔音太差，一晚没睡好"]


def _texts(n: int = 8) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for i in range(n):
        for label, pool in enumerate((POS + ZH_POS, NEG + ZH_NEG)):
            texts.append(f"{pool[i % len(pool)]} {i}")
            labels.append(label)
    return texts, labels


@pytest.mark.parametrize("labels", [["negative", "positive"], ["a", "b", "c"]])
def test_export_matches_scikit_learn_and_handles_text_without_spaces(tmp_path, labels):
    texts, y = _texts()
    if len(labels) == 3:  # multinomial: one weight column per class
        texts += ["so-so, it is fine", "average, nothing special"] * 3
        y += [2] * 6
    union, clf, val_f1 = baseline.fit(texts, y, texts[:6], y[:6])
    assert clf.C in baseline.C_GRID and 0 <= val_f1 <= 1
    baseline.export(union, clf, labels, tmp_path, {"C": clf.C})

    predictor = BaselineClassifier(tmp_path)
    unseen = ["love this screen", "awful, broke", "服务很好", "太差了", "", "x"]
    expected = clf.predict_proba(union.transform(unseen))
    got = predictor.predict_proba(unseen, batch_size=4)
    assert got.shape == (len(unseen), len(labels))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    probs, truncated = predictor.classify(unseen)
    assert not truncated.any() and predictor.labels == labels
    np.testing.assert_allclose(probs, got, atol=1e-6)


def test_chinese_reviews_are_told_apart_by_character_ngrams(tmp_path):
    texts, y = [], []
    for i in range(6):
        texts += [f"{ZH_POS[i % 3]}{i}", f"{ZH_NEG[i % 3]}{i}"]
        y += [1, 0]
    union, clf, _ = baseline.fit(texts, y, [], [])
    baseline.export(union, clf, ["negative", "positive"], tmp_path, {"C": clf.C})
    unseen = ["服务非常好，很方便", "服务很差，房间太脏"]
    assert BaselineClassifier(tmp_path).predict(unseen) == ["positive", "negative"]


def _scores(f1: float) -> Scores:
    return Scores(accuracy=f1, macro_f1=f1)


def test_baseline_rule_pass_fail_and_switched_off():
    on = QualityBar()
    passed = baseline_rule(on, 0.81, 0.756)
    assert passed.passed and passed.reason == "macro-F1 0.8100 beats the TF-IDF baseline 0.7560 (+0.000 margin)"
    failed = baseline_rule(on, 0.74, 0.756)
    assert not failed.passed
    assert failed.reason == "macro-F1 0.7400 does not beat the TF-IDF baseline 0.7560 (+0.000 margin)"
    assert not baseline_rule(on, 0.756, 0.756).passed  # a tie does not beat it
    assert not baseline_rule(QualityBar(baseline_margin=0.05), 0.79, 0.756).passed
    assert baseline_rule(QualityBar(baseline_margin=0.05), 0.81, 0.756).passed

    off = QualityBar(baseline_rule=False, baseline_rule_off_reason="labels are noisy, the baseline overfits them")
    switched = baseline_rule(off, 0.74, 0.756)
    assert switched.passed and switched.value == "off"
    assert "labels are noisy" in switched.reason and "0.7400" in switched.reason and "0.7560" in switched.reason


def test_switching_the_baseline_rule_off_needs_a_reason():
    with pytest.raises(ValueError, match="gate.baseline_rule_off_reason"):
        GateConfig(baseline_rule=False)
    with pytest.raises(ValueError, match="gate.baseline_rule_off_reason"):
        GateConfig(baseline_rule=False, baseline_rule_off_reason="  ")
    cfg = GateConfig(baseline_rule=False, baseline_rule_off_reason="why", baseline_margin=0.02, min_value=0.5)
    assert cfg.quality() == QualityBar(
        baseline_rule=False, baseline_rule_off_reason="why", baseline_margin=0.02, min_value=0.5
    )


def test_evaluation_verdict_applies_the_gates_quality_rules():
    """A model below TF-IDF fails the evaluation too, with the gate's reason text; above it, it passes."""
    bar = GateConfig().quality()
    below = {"model": _scores(0.74), "majority": _scores(0.3), "tfidf_logreg": _scores(0.756)}
    rules = verdict_rules(EvaluateConfig(), bar, below)
    failed = [r for r in rules if not r.passed]
    assert [r.name for r in failed] == ["baseline"]
    assert failed[0].reason == baseline_rule(bar, 0.74, 0.756).reason
    above = {**below, "model": _scores(0.8)}
    assert all(r.passed for r in verdict_rules(EvaluateConfig(), bar, above))


def test_only_a_missing_model_or_alias_means_no_champion(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    assert champion_version(client, "nobody") is None  # no such model
    client.create_registered_model("m")
    assert champion_version(client, "m") is None  # no such alias

    # A registry that cannot be reached, or a store that is not a database, is an error (the task retries).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    closed = MlflowClient("http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with pytest.raises(MlflowException):
        champion_version(closed, "m")
    broken = tmp_path / "broken.db"
    broken.write_text("not a database " * 100)
    with pytest.raises(Exception, match="not a database"):
        champion_version(MlflowClient(f"sqlite:///{broken}", registry_uri=f"sqlite:///{broken}"), "m")


def test_newest_rule_refuses_a_model_worse_on_the_rows_new_since_the_champion():
    """After drift these rows are the labeled window's held-out rows (the closed-loop case: 0.477 -> 0.424)."""
    cfg = GateConfig()
    worse = newest_rule(cfg, 0.424, 0.477, 105, "1")
    assert not worse.passed and worse.value == "0.4240 vs 0.4770"
    assert "macro-F1 on the 105 newest test rows 0.4240 vs champion v1 0.4770 (-0.0530)" in worse.reason
    assert newest_rule(cfg, 0.48, 0.477, 105, "1").passed
    assert newest_rule(GateConfig(newest_margin=0.06), 0.424, 0.477, 105, "1").passed
    few = newest_rule(cfg, 0.1, 0.9, 5, "1")
    assert few.passed and few.state == "not judged" and "5 new rows < gate.newest_min_rows=20" in few.reason
    assert newest_rule(cfg, 0.1, 0.9, 105, None).passed  # no champion
    assert newest_rule(GateConfig(newest_rule=False), 0.1, 0.9, 105, "1").value == "off"
