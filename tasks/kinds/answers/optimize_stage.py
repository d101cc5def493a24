"""The optimize_answers stage: the reader as fp32, fused dynamic int8 and int8-weight ONNX graphs, gated on parity.

Parity is judged on decoded answers, not logits (`export.py`): a graph serves only if it answers the parity questions
(a seeded sample of test) with the same character span as PyTorch on at least `min_agreement` of them; dynamic int8
is tried first (smallest, fastest), then, where `int8_weights` asks, int8 weights (`models/int8_weights.py`), then
fp32; none: PyTorch serves and the gate's parity rule says why.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.fingerprint import code_fingerprint, hash_json
from core.retry import RetryPolicy
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.int8_weights import quantize_weights_int8
from tasks.kinds.answers.export import export_onnx, quantize_int8, span_agreement
from tasks.kinds.answers.judging_stage import read, score, texts
from tasks.kinds.answers.splits import questions
from tasks.results.answers import AnsweringModel, OptimizedReader, PreparedQuestions


class AnswerOptimizeConfig(BaseModel):
    """Which graphs to build and how close to PyTorch they must answer."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_agreement: float = Field(
        0.99, gt=0, le=1, description="Share of questions a graph must answer with PyTorch's exact span."
    )
    max_questions: int = Field(50, gt=0, description="Seeded sample of test questions the parity check reads.")
    int8_weights: bool = Field(
        False,
        description="Also try int8 weights with fp32 arithmetic, before fp32: smaller than fp32 and closer to "
        "PyTorch than dynamic int8 (86-100% of spans vs 5-55% on weak COVID-QA readers), but slower than fp32 "
        "(docs/answers.md).",
    )
    seed: int = 0
    threads: int = Field(2, ge=1)
    retry: RetryPolicy = RetryPolicy(retries=1)


def export_graphs(model_dir: Path, out: Path, int8_weights: bool = False) -> dict[str, Path]:
    """fp32 (legacy exporter, eager attention), int8 (attention fused, then dynamic int8) and, where asked, int8
    weights; in the order the stage tries them: smallest first."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    fp32 = export_onnx(model, AutoTokenizer.from_pretrained(str(model_dir)), out / "model.onnx")
    int8 = out / "model_int8.onnx"
    quantize_int8(fp32, int8, model.config.num_attention_heads, model.config.hidden_size)
    Path(int8).with_suffix(".fused.onnx").unlink(missing_ok=True)  # the step between: not served
    graphs = {"int8": int8}
    if int8_weights:
        graphs["int8-weights"] = Path(quantize_weights_int8(fp32, out / "model_int8-weights.onnx"))
    return graphs | {"fp32": fp32}


def optimize_answers(
    cfg: AnswerOptimizeConfig,
    data: PreparedQuestions,
    model: AnsweringModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> OptimizedReader:
    from models.span_reader import SpanReader

    key = hash_json(cfg.model_dump(exclude={"retry"}), model.uri, code_fingerprint())
    out, model_dir = ws.local_dir("optimize_answers", key), materialize(model.uri)
    files = export_graphs(model_dir, out / "onnx", cfg.int8_weights)
    test = questions(data, "test", cfg.max_questions, cfg.seed)
    readers = {"pytorch": SpanReader.load(model_dir, threads=cfg.threads)}
    readers |= {v: SpanReader.load(model_dir, path, threads=cfg.threads) for v, path in files.items()}
    spans = {v: read(r, test) for v, r in readers.items()}
    agree = {v: span_agreement(spans["pytorch"], spans[v]) for v in files}
    f1 = {v: score(test, texts(s), data.scoring).f1 for v, s in spans.items()}
    chosen = next((v for v in files if agree[v] >= cfg.min_agreement), "pytorch")
    reasons = [
        f"{v}: {agree[v]:.4f} of answers agree < {cfg.min_agreement}" for v in files if agree[v] < cfg.min_agreement
    ]
    uri = publish_dir(out / "onnx", ws.uri("optimize_answers", key, "onnx"))
    with stage_run(tracking, "optimize_answers", parent_run_id, {"zero2one.task": "answers"}) as run:
        mlflow.log_metrics({f"agreement_{v}": a for v, a in agree.items()} | {f"f1_{v}": x for v, x in f1.items()})
    result = OptimizedReader(
        uri=uri,
        onnx_file=files[chosen].name if chosen != "pytorch" else None,
        variant=chosen,
        passed=chosen != "pytorch",
        verdict=f"{chosen} serves" + (f" ({agree[chosen]:.4f} of answers agree)" if chosen != "pytorch" else ""),
        reasons=reasons,
        agreement=agree,
        f1=f1,
        sizes_mb={v: round(path.stat().st_size / 2**20, 1) for v, path in files.items()},
        eval_size=len(test),
        mlflow_run_id=run.info.run_id,
    )
    rows = [{"graph": v, "agreement": agree.get(v, 1.0), "answer_f1": round(f1[v], 4)} for v in readers]
    reporting.markdown(
        "optimize-answers", f"# ONNX graphs of the reader\n\n{reporting.md_table(rows)}\n\n{result.verdict}"
    )
    return result
