"""Several candidate students on a tiny random teacher: sized before training, trained smallest first, the first
that keeps the floor chosen, the larger ones never trained, and every refusal named by its rule."""

from __future__ import annotations

import json

import pytest

from models.compression import CompressionPolicy, importance, make_student, prune
from tasks.compress.candidates import block_parameters, compress_candidates, shape_name
from tests.test_compress_model import _batch, tiny_teacher
from tests.test_compress_stage import FAST, _splits


def _blocks(model) -> int:
    return sum(p.numel() for p in model.bert.encoder.parameters())


def test_the_size_estimate_is_the_students_real_block_count(tmp_path):
    teacher, tok = tiny_teacher(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    distilled = CompressionPolicy(student_layers=2, ffn_size=32)
    assert block_parameters(config, distilled) == _blocks(make_student(teacher, 2, 32)[0])
    pruned = CompressionPolicy(method="prune", heads_kept=2, neurons_kept=16)
    heads, ffn = importance(teacher, [_batch(tok)])
    prune(teacher, heads, ffn, heads=2, neurons=16)
    assert block_parameters(config, pruned) == _blocks(teacher)
    assert [shape_name(p, config) for p in (distilled, pruned)] == ["distill-2L-ffn32", "prune-h2-n16"]
    assert shape_name(CompressionPolicy(student_layers=2, ffn_size=64), config) == "distill-2L"  # the teacher's width


@pytest.mark.kinds
def test_the_smallest_student_that_keeps_the_floor_is_chosen_and_larger_ones_are_not_trained(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    fast = {**FAST, "max_length": 16, "trim_vocabulary": False}
    # A floor above the teacher refuses the 1-layer student whatever it learns; the 2-layer one keeps 1% of it.
    never = CompressionPolicy(student_layers=1, **fast).model_copy(update={"quality_floor": 1.01})
    kept = CompressionPolicy(student_layers=2, quality_floor=0.01, **fast)
    larger = CompressionPolicy(student_layers=3, **fast)
    seen = []
    choice = compress_candidates(
        tmp_path / "teacher", _splits(), tmp_path / "work", [larger, kept, never], log=seen.append
    )
    assert [t.name for t in choice.tried] == ["distill-1L", "distill-2L", "distill-3L"]
    assert [t.name for t in seen] == ["distill-1L", "distill-2L"]  # logged as each finished
    first, chosen, untrained = choice.tried
    assert first.failed_rule == "floor" and chosen is choice.chosen and choice.record is chosen.result
    assert untrained.result is None and not (tmp_path / "work" / untrained.name).exists()
    story = choice.story()
    assert story.startswith("distill-2L serves, the smallest that passed (3 candidates, smallest first: ")
    assert "distill-1L (" in story and "refused by the floor rule: student " in story
    assert "distill-3L: not trained (a smaller candidate passed)" in story
    assert len(list((tmp_path / "work" / "logits").glob("teacher-train-*.npy"))) == 1  # one cache for all
    again = compress_candidates(tmp_path / "teacher", _splits(), tmp_path / "work", [larger, kept, never])
    assert again.chosen.result == chosen.result  # recorded: a retry trains nothing twice


@pytest.mark.kinds
def test_when_every_candidate_is_refused_the_teacher_goes_on_and_each_refusal_is_named(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    fast = {**FAST, "max_length": 16, "trim_vocabulary": False, "quality_floor": 0.01}
    policies = [CompressionPolicy(student_layers=n, **fast) for n in (1, 2)]
    choice = compress_candidates(tmp_path / "teacher", _splits(), tmp_path / "work", policies, baseline_metric=1.01)
    assert choice.chosen is None and [t.failed_rule for t in choice.tried] == ["baseline", "baseline"]
    assert choice.story().startswith("no student kept the floor (2 candidates, smallest first: ")
    assert choice.story().endswith("the teacher serves") and "does not beat the baseline 1.0100" in choice.story()
    assert choice.record.student_metric == max(t.result.student_metric for t in choice.tried)
