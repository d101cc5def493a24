"""The compress stage (off by default): the fine-tuned classifier distilled (and/or pruned) into a smaller student
before evaluation and ONNX int8, so what serves is small because it was made small, not only quantized.

The work is `tasks/compress/` (students from the teacher's layers, distillation on cached teacher logits, pruning
by gradient importance with real removal; `models/compression/`); this stage runs it in the workspace, logs it,
and applies the floor: the student replaces the teacher only if it keeps `policy.quality_floor` of the teacher's
test macro-F1. The evaluation, the gate (TF-IDF, the champion) and the int8 parity check then judge the student as
they judge any model; a refused student leaves the teacher in place and the reason in the run.
"""

from __future__ import annotations

import mlflow
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.fingerprint import code_fingerprint, hash_json
from core.orchestration import RetryPolicy
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.compression import CompressionPolicy
from tasks.data.loaders import load_splits
from tasks.results import Compression, FinetunedModel, PreparedData


class CompressConfig(BaseModel):
    """Whether to compress the fine-tuned classifier, and how (`compress.policy`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Distil/prune the fine-tuned model before evaluation and ONNX.")
    policy: CompressionPolicy = CompressionPolicy()
    retry: RetryPolicy = RetryPolicy(retries=1)


def compress_classifier(
    cfg: CompressConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> Compression:
    from tasks.compress.stage import compress

    key = hash_json(cfg.policy, data.fingerprint, model.uri, code_fingerprint())
    workdir = ws.local_dir("compress", key)  # a retry resumes from the Trainer's newest checkpoint in it
    with stage_run(tracking, "compress", parent_run_id, {"zero2one.teacher": model.uri}) as run:
        done = compress(materialize(model.uri), load_splits(data), workdir, cfg.policy)
        mlflow.log_params(
            {"method": done.method, "student_layers": done.student_layers, "floor": cfg.policy.quality_floor}
        )
        mlflow.log_metrics(
            {"teacher_macro_f1": done.teacher_metric, "student_macro_f1": done.student_metric}
            | {"kept_ratio": done.kept_ratio, "student_parameters": done.student_parameters}
        )
    uri = publish_dir(workdir / "student", ws.uri("compress", key, "student")) if done.passed else None
    result = Compression(
        uri=uri,
        teacher_uri=model.uri,
        mlflow_run_id=run.info.run_id,
        **done.model_dump(include=set(Compression.model_fields) - {"uri", "teacher_uri", "mlflow_run_id"}),
    )
    verdict = "the student replaces the teacher" if result.passed else "refused: the teacher goes on"
    reporting.markdown("compress", f"# Compression: {verdict}\n\n{result.summary()}\n\n{result.reason}\n")
    reporting.logger().info("compress: %s (%s); %s", verdict, result.reason, result.summary())
    return result
