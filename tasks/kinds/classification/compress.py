"""The compress stage (off by default): the fine-tuned classifier distilled (and/or pruned) into a smaller student
before evaluation and ONNX int8, so what serves is small because it was made small, not only quantized.

The work is `tasks/compress/` (students from the teacher's layers, distillation on cached teacher logits, pruning
by gradient importance with real removal; `models/compression/`); this stage runs it in the workspace with the
training stages' skeleton (`TrainingStage`: one content key, one locked work folder, a retry resumes each candidate
from its newest checkpoint), logs it, and applies the floor: the candidates (`compress.candidates`, else
`compress.policy` alone) are trained smallest first and the first that keeps `quality_floor` of the teacher's test
macro-F1 and beats the TF-IDF baseline (`beat_baseline`) replaces the teacher. The evaluation, the gate and the int8
parity check then judge it as they judge any model; when none passes, the teacher goes on and the gate's
`compression` rule says which rule refused each candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import mlflow
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import reporting
from core.faults import step_fault_callback
from core.orchestration import RetryPolicy
from core.storage import materialize
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.compression.policy import CompressionPolicy
from tasks.data.loaders import load_baseline, load_splits
from tasks.judging.scoring import score
from tasks.kinds.classification.baseline import train_baseline
from tasks.results import Compression, FinetunedModel, PreparedData
from tasks.training.skeleton import TrainingStage

STAGE = "compress"


class CompressCandidate(BaseModel):
    """One student shape to try; a field left out keeps `compress.policy`'s (`ffn_size: null`: the teacher's)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["distill", "prune", "distill+prune"] | None = None
    student_layers: int | None = Field(None, gt=0)
    ffn_size: int | None = Field(None, gt=0)
    heads_kept: int | None = Field(None, gt=0)
    neurons_kept: int | None = Field(None, gt=0)


class CompressConfig(BaseModel):
    """Whether to compress the fine-tuned classifier, and how (`compress.policy`, `compress.candidates`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Distil/prune the fine-tuned model before evaluation and ONNX.")
    policy: CompressionPolicy = CompressionPolicy()
    candidates: list[CompressCandidate] = Field(
        [],
        description="Student shapes, trained smallest first until one keeps the floor (a larger one is trained only "
        "when the smaller ones were refused); empty: compress.policy alone, one training.",
    )
    beat_baseline: bool = Field(
        True, description="The student must also beat the TF-IDF baseline's test macro-F1 (the evaluate stage's)."
    )
    retry: RetryPolicy = RetryPolicy(retries=1)

    @model_validator(mode="after")
    def _candidates_are_policies(self) -> CompressConfig:
        self.policies()
        return self

    def policies(self) -> list[CompressionPolicy]:
        """`compress.policy` with each candidate's shape, in the configured order (the stage sorts them by size)."""
        if not self.candidates:
            return [self.policy]
        policies = []
        for i, candidate in enumerate(self.candidates):
            try:
                shape = self.policy.model_dump() | candidate.model_dump(exclude_unset=True)
                policy = CompressionPolicy.model_validate(shape)
            except ValidationError as e:
                raise ValueError(f"compress.candidates[{i}]: {e.errors()[0]['msg']}") from None
            if policy in policies:
                raise ValueError(f"compress.candidates[{i}] repeats compress.candidates[{policies.index(policy)}]")
            policies.append(policy)
        return policies


def compress_classifier(
    cfg: CompressConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> Compression:
    from tasks.compress.candidates import compress_candidates
    from tasks.compress.stage import check_inputs

    run = TrainingStage(STAGE, ws, cfg.model_dump(exclude={"enabled", "retry"}), data.fingerprint, model.uri)
    splits, teacher = load_splits(data), materialize(model.uri)
    check_inputs(teacher, splits)  # bad input is refused before the baseline or any student trains
    baseline = _baseline_metric(cfg, data, splits, ws)
    with run.locked() as resume, stage_run(tracking, STAGE, parent_run_id, {"zero2one.teacher": model.uri}) as mlrun:
        fault = step_fault_callback(STAGE, Path(resume["faults_dir"]))  # ZERO2ONE_FAULTS=compress@step=N
        choice = compress_candidates(
            teacher, splits, run.workdir, cfg.policies(), baseline, [fault] if fault else [], log=_log_candidate
        )
        _log_run(cfg, choice, baseline)
    done = choice.record
    own = {"uri", "teacher_uri", "mlflow_run_id", "passed", "reason", "seconds"}
    result = Compression(
        seconds=round(sum(t.result.seconds for t in choice.tried if t.result), 1),  # every candidate trained
        uri=run.publish(f"{choice.chosen.name}/student") if choice.chosen else None,
        teacher_uri=model.uri,
        mlflow_run_id=mlrun.info.run_id,
        passed=choice.chosen is not None,
        reason=choice.story(),
        **done.model_dump(include=set(Compression.model_fields) - own),
    )
    verdict = f"{choice.chosen.name} replaces the teacher" if choice.chosen else "refused: the teacher goes on"
    table = reporting.md_table([_row(t) for t in choice.tried])
    reporting.markdown(STAGE, f"# Compression: {verdict}\n\n{table}\n\n{result.summary()}\n\n{result.reason}\n")
    reporting.logger().info("compress: %s (%s); %s", verdict, result.reason, result.summary())
    return result


def _baseline_metric(cfg: CompressConfig, data: PreparedData, splits, ws: Workspace) -> float | None:
    """The TF-IDF baseline's test macro-F1 the student must beat: the evaluate stage's model (fitted once per data)."""
    if not cfg.beat_baseline:
        return None
    test = splits["test"]
    predicted = load_baseline(train_baseline(splits, data.labels, data.fingerprint, ws)).predict(list(test["text"]))
    return score(list(test["label"]), [data.labels.index(p) for p in predicted], data.labels).macro_f1


def _log_candidate(tried) -> None:
    reporting.logger().info("compress: candidate %s", tried.line())


def _row(tried) -> dict:
    """One line of the stage's Prefect table: the candidate, its size, its score and its verdict."""
    r, row = tried.result, {"candidate": tried.name, "block parameters": tried.block_parameters}
    if r is None:
        return row | {"parameters": "-", "macro-F1": "-", "verdict": "not trained"}
    verdict = "passed" if r.passed else f"refused ({tried.failed_rule})"
    return row | {"parameters": r.student_parameters, "macro-F1": round(r.student_metric, 4), "verdict": verdict}


def _log_run(cfg: CompressConfig, choice, baseline: float | None) -> None:
    """The compress run's record: every candidate's numbers, the chosen one's as the run's own."""
    done = choice.record
    mlflow.log_params(
        {
            "method": done.method,
            "student_layers": done.student_layers,
            "floor": cfg.policy.quality_floor,
            "candidates": ",".join(t.name for t in choice.tried),
            "chosen": choice.chosen.name if choice.chosen else "none (teacher)",
        }
    )
    metrics = {"teacher_macro_f1": done.teacher_metric, "student_macro_f1": done.student_metric}
    metrics |= {"kept_ratio": done.kept_ratio, "student_parameters": done.student_parameters}
    metrics |= {"global_step": done.global_step, "resumed_from_step": done.resumed_from_step or 0}
    metrics |= {"baseline_macro_f1": baseline} if baseline is not None else {}
    for t in choice.tried:
        if t.result is not None:
            metrics[f"{t.name}_macro_f1"] = t.result.student_metric
    mlflow.log_metrics(metrics)
    mlflow.log_dict({t.name: t.model_dump(mode="json") for t in choice.tried}, "candidates.json")
