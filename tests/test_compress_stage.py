"""The compress stage on a tiny random teacher: a loadable smaller student, the verdict, resume, bad input."""

from __future__ import annotations

import shutil

import datasets
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.compression import CompressionPolicy, load_compressed
from tasks.compress import compress
from tests.test_compress_model import tiny_teacher

# Trains real (tiny) models: minutes on a loaded 2-core machine, so with the other model-kind tests in
# `make test-kinds`, not in `make test`.
pytestmark = pytest.mark.kinds

SPAM = ["win a free prize now {}", "urgent claim your cash {}", "txt stop to end {}"]
HAM = ["call me later at home {}", "see you at lunch {}", "ok i am on my way {}"]


def _splits(n: int = 24) -> datasets.DatasetDict:
    rows = [(SPAM[i % 3].format(i), 1) if i % 2 else (HAM[i % 3].format(i), 0) for i in range(n + 16)]
    part = {"train": rows[:n], "validation": rows[n : n + 8], "test": rows[n + 8 :]}
    return datasets.DatasetDict(
        {
            k: datasets.Dataset.from_dict({"text": [t for t, _ in v], "label": [y for _, y in v]})
            for k, v in part.items()
        }
    )


FAST = {"epochs": 2, "recovery_epochs": 2, "batch_size": 8, "importance_batches": 2, "max_length": 16}


def test_distilled_student_is_smaller_loadable_and_judged(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    policy = CompressionPolicy(student_layers=2, ffn_size=32, **FAST)
    result = compress(tmp_path / "teacher", _splits(), tmp_path / "work", policy, unlabelled=["free cash 99"])
    assert (result.teacher_layers, result.student_layers, result.layers_kept) == (4, 2, [0, 2])
    assert result.neurons_removed == 2 * 32 and result.tokens_removed > 25000
    assert (
        result.student_parameters < result.teacher_parameters / 10 and result.student_size_mb < result.teacher_size_mb
    )
    assert result.global_step == 2 * 4  # 25 texts (24 + 1 unlabelled) in batches of 8, two epochs
    assert result.passed == (result.student_metric >= 0.97 * result.teacher_metric)
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)  # plain config: any loader works
    tok = AutoTokenizer.from_pretrained(result.student_dir)
    assert model.config.intermediate_size == 32 and len(tok) == model.config.vocab_size
    assert model(**tok(["win cash"], return_tensors="pt")).logits.shape == (1, 2)


def test_a_student_below_the_baseline_is_refused_with_the_rule(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    policy = CompressionPolicy(method="prune", heads_kept=1, neurons_kept=8, trim_vocabulary=False, **FAST)
    result = compress(tmp_path / "teacher", _splits(), tmp_path / "work", policy, baseline_metric=1.01)
    assert not result.passed and ("baseline 1.0100" in result.reason or "floor" in result.reason)
    assert result.heads_removed == 4 * 3 and result.neurons_removed == 4 * 56
    assert load_compressed(result.student_dir).bert.encoder.layer[3].attention.self.query.out_features == 8


def test_a_retry_resumes_from_the_trainer_checkpoint(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    policy = CompressionPolicy(student_layers=1, **FAST)
    first = compress(tmp_path / "teacher", _splits(), tmp_path / "work", policy)
    assert first.resumed_from_step is None
    assert compress(tmp_path / "teacher", _splits(), tmp_path / "work", policy) == first  # finished: recorded result
    (tmp_path / "work" / "result.json").unlink()
    shutil.rmtree(tmp_path / "work" / "student")  # as if the attempt died after its last checkpoint
    again = compress(tmp_path / "teacher", _splits(), tmp_path / "work", policy)
    assert again.resumed_from_step == first.global_step and again.global_step == first.global_step


def test_labels_outside_the_teacher_are_refused_before_compute(tmp_path):
    tiny_teacher(tmp_path / "teacher")
    splits = _splits()
    splits["test"] = splits["test"].map(lambda row: {"label": 5 if row["text"].endswith("39") else row["label"]})
    with pytest.raises(ValueError, match=r"test label ids \[5\] are outside the teacher's 2 labels"):
        compress(tmp_path / "teacher", splits, tmp_path / "work", CompressionPolicy(**FAST))
    assert not (tmp_path / "work").exists()
