"""The compression floor as a gate rule, and several candidate students (#27): the smallest student that keeps the
floor serves, a refused one never does (the teacher does), and the gate says which rule refused it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import load_config
from models.compression.policy import CompressionPolicy
from tasks.judging.gate_rules import compression_rule
from tasks.kinds.classification.compress import CompressConfig
from tasks.results import Compression, OptimizedModel

ROOT = Path(__file__).resolve().parent.parent
TEACHER, STUDENT = "/ws/finetune/k/model", "/ws/compress/k/distill-2L/student"
INT8 = OptimizedModel.model_construct(passed=True, onnx_file="model.int8.onnx", variant="int8")


def _compression(passed: bool, reason: str) -> Compression:
    return Compression(
        uri=STUDENT if passed else None,
        teacher_uri=TEACHER,
        method="distill",
        teacher_parameters=22_700_000,
        student_parameters=5_900_000,
        teacher_layers=6,
        student_layers=2,
        heads_removed=0,
        neurons_removed=1536,
        tokens_removed=22_250,
        teacher_size_mb=87.0,
        student_size_mb=22.5,
        teacher_metric=0.98,
        student_metric=0.99 if passed else 0.90,
        kept_ratio=0.99 / 0.98 if passed else 0.90 / 0.98,
        passed=passed,
        reason=reason,
        seconds=300.0,
        mlflow_run_id="compress-run",
    )


REFUSED = "no student kept the floor (1 candidate, smallest first: distill-2L (5.9M parameters): refused by the floor "
REFUSED += "rule: student 0.9000 < floor 0.9506 (97% of teacher 0.9800)); the teacher serves"


def test_a_refused_student_leaves_the_teachers_graph_and_the_rule_says_which_rule_refused_it():
    rule = compression_rule(_compression(False, REFUSED), TEACHER, INT8)
    assert rule.name == "compression" and rule.passed  # the teacher may serve: the gate judges it as any model
    assert rule.value == "student refused: the teacher serves"
    assert "refused by the floor rule: student 0.9000 < floor 0.9506" in rule.reason
    assert rule.reason.endswith("the teacher's int8 ONNX graph is registered")


def test_a_refused_student_that_was_registered_anyway_fails_the_gate():
    rule = compression_rule(_compression(False, REFUSED), STUDENT, INT8)
    assert not rule.passed and f"chose the teacher ({TEACHER}), but {STUDENT} was registered" in rule.reason


def test_a_kept_student_serves_and_a_teacher_registered_in_its_place_fails():
    kept = _compression(True, "distill-2L serves, it passed (...)")
    rule = compression_rule(kept, STUDENT, INT8)
    assert rule.passed and rule.value == "student serves: 6 -> 2 layers, 101.0% of the teacher kept"
    assert rule.reason.endswith("the student's int8 ONNX graph is registered")
    assert compression_rule(kept, STUDENT, None).reason.endswith("the student's PyTorch model is registered")
    assert not compression_rule(kept, TEACHER, INT8).passed


def test_candidates_take_the_policy_and_change_only_their_shape():
    config = load_config(ROOT / "configs" / "finetune-pretrained-compressed.yaml")
    policies = config.compress.policies()
    assert [(p.student_layers, p.ffn_size) for p in policies] == [(2, 768), (3, 768)]
    assert config.compress.beat_baseline and all(p.epochs == config.compress.policy.epochs for p in policies)
    plain = CompressConfig(policy=CompressionPolicy(student_layers=3), candidates=[{"ffn_size": None}])
    assert [(p.student_layers, p.ffn_size) for p in plain.policies()] == [(3, None)]  # null: the teacher's width
    assert CompressConfig().policies() == [CompressionPolicy()]  # no candidates: the policy alone, one training


def test_a_bad_candidate_is_refused_with_its_index():
    with pytest.raises(ValueError, match=r"compress\.candidates\[1\]: .*needs compression.heads_kept or neurons_kept"):
        CompressConfig(candidates=[{"student_layers": 3}, {"method": "prune"}])
    with pytest.raises(ValueError, match=r"compress\.candidates\[1\] repeats compress\.candidates\[0\]"):
        CompressConfig(candidates=[{"student_layers": 3}, {"student_layers": 3}])
    with pytest.raises(ValueError, match="student_layer"):
        load_config(ROOT / "configs" / "tiny.yaml", ["compress.candidates=[{student_layer: 3}]"])
