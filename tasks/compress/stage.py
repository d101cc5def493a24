"""The compress stage as a plain function: a fine-tuned teacher folder and prepared splits in, a student folder out.

Order: check inputs -> the teacher's logits on the distillation texts (cached in the work folder) -> the student
(layers copied from the teacher and/or heads and neurons pruned by gradient importance) -> vocabulary trimmed to the
training texts -> distillation with the Trainer (checkpoints every epoch; a retry resumes from the newest) -> the
teacher and the student scored on the test split -> the floor rule (`models.compression.judge`). A finished work
folder returns its recorded result without training again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

from models.compression.distill import IGNORE, make_student, teacher_logits
from models.compression.policy import CompressionPolicy, judge
from models.compression.prune import encoder_layers, importance, prune
from models.compression.vocab import trim_vocabulary
from tasks.compress.result import CompressResult
from tasks.compress.training import distill_student

RESULT, STUDENT = "result.json", "student"


def check_inputs(teacher_dir: Path, splits: datasets.DatasetDict) -> list[str]:
    """The teacher's label names; bad input is refused here, before any compute, naming the file and value."""
    for name in ("config.json", "tokenizer.json"):
        if not (teacher_dir / name).exists():
            raise ValueError(f"compress: {teacher_dir / name} does not exist; the teacher needs its fast tokenizer")
    config = json.loads((teacher_dir / "config.json").read_text())
    labels = [config.get("id2label", {}).get(str(i)) for i in range(len(config.get("id2label", {})))]
    for split in ("train", "validation", "test"):
        if split not in splits or not {"text", "label"} <= set(splits[split].column_names):
            raise ValueError(f"compress: the data has no '{split}' split with text and label columns")
        bad = [y for y in set(splits[split]["label"]) if not 0 <= y < len(labels)]
        if bad:
            raise ValueError(
                f"compress: {split} label ids {sorted(bad)} are outside the teacher's {len(labels)} labels "
                f"({teacher_dir / 'config.json'}: id2label {labels})"
            )
    if len(splits["train"]) == 0 or len(splits["test"]) == 0:
        raise ValueError("compress: the train or test split is empty")
    return labels


def _window(tokenizer, texts: Sequence[str], policy: CompressionPolicy) -> int:
    """Token window: the policy's, else the 99th percentile of the train texts' lengths (at most 128)."""
    if policy.max_length:
        return policy.max_length
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    return int(min(128, max(8, np.percentile(lengths, 99))))


def _cached_logits(workdir: Path, name: str, model, tok, texts: Sequence[str], max_length: int) -> np.ndarray:
    """The teacher's logits on `texts`, computed once per (texts, window) and kept in the work folder."""
    digest = hashlib.sha256(json.dumps([list(texts), max_length, str(model.name_or_path)]).encode()).hexdigest()[:16]
    path = workdir / f"teacher-{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    workdir.mkdir(parents=True, exist_ok=True)
    logits = teacher_logits(model, tok, texts, max_length)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, logits)
    partial.replace(path)  # atomic: a candidate running beside this one never reads half a file
    return logits


def _macro_f1(model, tok, split: datasets.Dataset, max_length: int) -> float:
    predicted = teacher_logits(model, tok, list(split["text"]), max_length).argmax(axis=1)
    return float(f1_score(split["label"], predicted, average="macro"))


def _score_batches(tok, split: datasets.Dataset, policy: CompressionPolicy, max_length: int) -> list[dict]:
    """Labelled train batches that score heads and neurons (a fixed, seeded sample)."""
    rows = split.shuffle(seed=policy.seed).select(range(min(len(split), policy.importance_batches * policy.batch_size)))
    out = []
    for start in range(0, len(rows), policy.batch_size):
        part = rows[start : start + policy.batch_size]
        enc = tok(part["text"], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out.append({**enc, "labels": torch.tensor(part["label"])})
    return out


def build_student(teacher, tok, policy: CompressionPolicy, train: datasets.Dataset, max_length: int):
    """(student, facts): layers copied and/or heads and FFN neurons removed, before any training."""
    facts = {"layers_kept": list(range(len(encoder_layers(teacher)))), "heads_removed": 0, "neurons_removed": 0}
    if "distill" in policy.method:
        narrower = policy.ffn_size is not None and policy.ffn_size < teacher.config.intermediate_size
        ffn = importance(teacher, _score_batches(tok, train, policy, max_length))[1] if narrower else None
        student, facts["layers_kept"] = make_student(teacher, policy.student_layers, policy.ffn_size, ffn)
        if narrower:
            facts["neurons_removed"] = (teacher.config.intermediate_size - policy.ffn_size) * policy.student_layers
    else:
        student = copy.deepcopy(teacher)
    if "prune" in policy.method:
        heads, ffn = importance(student, _score_batches(tok, train, policy, max_length))
        removed = prune(student, heads, ffn, policy.heads_kept, policy.neurons_kept)
        facts["heads_removed"] = removed["heads"]
        facts["neurons_removed"] += removed["neurons"]
    return student, facts


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20, 2)


def _distillation_data(tok, splits, logits: np.ndarray, unlabelled: Sequence[str]) -> datasets.Dataset:
    texts = list(splits["train"]["text"]) + list(unlabelled)
    labels = list(splits["train"]["label"]) + [IGNORE] * len(unlabelled)
    return datasets.Dataset.from_dict({"text": texts, "label": labels, "teacher_logits": logits.tolist()})


def compress(
    teacher_dir: str | Path,
    splits: datasets.DatasetDict,
    workdir: str | Path,
    policy: CompressionPolicy | None = None,
    baseline_metric: float | None = None,
    unlabelled: Sequence[str] = (),
    logits_dir: str | Path | None = None,
    callbacks: Sequence = (),
) -> CompressResult:
    """Distil and/or prune the classifier in `teacher_dir`; the student is saved in `workdir/student`.

    `baseline_metric`: the strong baseline's test macro-F1 the student must beat (the gate's rule); `unlabelled`:
    extra texts the student learns the teacher's logits on; `logits_dir`: where the teacher's logits are cached
    (default `workdir`; share one folder between candidates of the same teacher); `callbacks`: extra Trainer callbacks
    (the pipeline's fault injection).
    """
    policy = policy or CompressionPolicy()
    teacher_dir, workdir = Path(teacher_dir), Path(workdir)
    if (workdir / RESULT).exists():
        return CompressResult.model_validate_json((workdir / RESULT).read_text())
    check_inputs(teacher_dir, splits)
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    set_seed(policy.seed)
    tok = AutoTokenizer.from_pretrained(str(teacher_dir))
    teacher = AutoModelForSequenceClassification.from_pretrained(str(teacher_dir)).eval()
    max_length = _window(tok, splits["train"]["text"], policy)
    texts = list(splits["train"]["text"]) + list(unlabelled)
    logits = _cached_logits(Path(logits_dir or workdir), "train", teacher, tok, texts, max_length)
    teacher_metric = _macro_f1(teacher, tok, splits["test"], max_length)
    student, facts = build_student(teacher, tok, policy, splits["train"], max_length)
    tokens_removed = 0
    if policy.trim_vocabulary:
        corpus = texts + list(splits["validation"]["text"])  # never the test texts
        tok, tokens_removed = trim_vocabulary(student, tok, corpus, workdir / "tokenizer")
    data = _distillation_data(tok, splits, logits, unlabelled)
    epochs = policy.epochs if "distill" in policy.method else policy.recovery_epochs
    trained = distill_student(
        student, tok, data, splits["validation"], policy, epochs, max_length, workdir, callbacks=callbacks
    )
    student = trained.model.eval()
    student.save_pretrained(str(workdir / STUDENT))
    tok.save_pretrained(str(workdir / STUDENT))
    student_metric = _macro_f1(student, tok, splits["test"], max_length)
    metrics = {"teacher_metric": teacher_metric, "student_metric": student_metric, "baseline_metric": baseline_metric}
    facts |= {"tokens_removed": tokens_removed, "max_length": max_length, "global_step": trained.global_step}
    facts |= {"resumed_from_step": trained.resumed_from_step, "seconds": round(time.perf_counter() - started, 1)}
    result = _result(policy, teacher_dir, teacher, student, workdir, metrics, facts)
    (workdir / RESULT).write_text(result.model_dump_json(indent=2))
    return result


def _result(policy: CompressionPolicy, teacher_dir: Path, teacher, student, workdir: Path, metrics: dict, facts: dict):
    """The stage's record: what the student is beside the teacher, both scores, and the floor's verdict."""
    verdict = judge(policy, metrics["teacher_metric"], metrics["student_metric"], metrics["baseline_metric"])
    teacher_metric = metrics["teacher_metric"]
    return CompressResult(
        student_dir=str(workdir / STUDENT),
        method=policy.method,
        teacher_parameters=sum(p.numel() for p in teacher.parameters()),
        student_parameters=sum(p.numel() for p in student.parameters()),
        teacher_layers=teacher.config.num_hidden_layers,
        student_layers=student.config.num_hidden_layers,
        teacher_size_mb=_size_mb(teacher_dir),
        student_size_mb=_size_mb(workdir / STUDENT),
        kept_ratio=metrics["student_metric"] / teacher_metric if teacher_metric else 0.0,
        passed=verdict.passed,
        reason=verdict.reason,
        **metrics,
        **facts,
    )
