"""The optimize stage: build the variants, gate each on parity, time them, choose what serves, report."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import code_fingerprint, hash_json
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.classifier import TextClassifier
from models.onnx_classifier import OnnxClassifier, load_tokenizer
from models.onnx_export import ExportError
from tasks.data.loaders import load_splits
from tasks.judging.scoring import score
from tasks.optimize.config import OptimizeConfig
from tasks.optimize.latency import latency_rows, torch_runner
from tasks.optimize.parity import check_parity
from tasks.optimize.variants import build_variants
from tasks.results.classification import FinetunedModel, OptimizedModel, Parity
from tasks.results.common import Variant
from tasks.results.data import PreparedData


def _check_model(model_dir: Path, data: PreparedData) -> dict:
    """Bad input is reported before any export starts."""
    for name in ("config.json", "tokenizer.json"):
        if not (model_dir / name).exists():
            raise PipelineInputError(
                f"optimize: {model_dir} has no {name}; the ONNX path needs a model saved with its fast tokenizer"
            )
    config = json.loads((model_dir / "config.json").read_text())
    try:
        vocab = load_tokenizer(model_dir, config.get("max_position_embeddings", 512)).get_vocab_size()
    except Exception as e:  # tokenizers raises its own exception type for a malformed file
        raise PipelineInputError(f"optimize: the tokenizer in {model_dir} cannot be loaded: {e}") from e
    if vocab > config["vocab_size"]:
        raise PipelineInputError(
            f"optimize: the tokenizer in {model_dir} has {vocab} tokens but the model has {config['vocab_size']} "
            "embeddings (tokenizer/model mismatch); save the model with the tokenizer it was trained with"
        )
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    if labels != data.labels:
        raise PipelineInputError(f"optimize: model {model_dir} predicts {labels}, the data has labels {data.labels}")
    return config


def _gate_variants(
    cfg: OptimizeConfig, built: dict[str, Path], model_dir: Path, reference: np.ndarray, test, labels: list[str]
) -> tuple[dict[str, OnnxClassifier], dict[str, Parity], dict[str, str]]:
    """Load each built graph in ONNX Runtime and check its parity with PyTorch on the whole test split."""
    threads = torch.get_num_threads()  # ORT gets as many threads as PyTorch: a fair race
    classifiers: dict[str, OnnxClassifier] = {}
    parity: dict[str, Parity] = {}
    rejected: dict[str, str] = {}
    for variant, path in built.items():
        try:
            classifiers[variant] = OnnxClassifier(path, model_dir, threads=threads)
        except Exception as e:  # ORT rejects the graph: that variant cannot serve
            rejected[variant] = f"ONNX Runtime cannot load it: {type(e).__name__}: {e}"
            continue
        candidate = classifiers[variant].logits(list(test["text"]), cfg.batch_size)
        parity[variant] = check_parity(cfg, reference, candidate, list(test["label"]), labels)
        if not parity[variant].passed:
            rejected[variant] = f"parity failed: {parity[variant].reason}"
    return classifiers, parity, rejected


def _choose(cfg: OptimizeConfig, parity: dict[str, Parity]) -> tuple[Variant, str]:
    """The most optimized variant that passed parity, and the sentence that says so."""
    intended: Variant = "fp32" if cfg.quantization == "none" else "int8"
    variant: Variant = next((v for v in ("int8", "fp32") if v in parity and parity[v].passed), "pytorch")
    if variant == intended:
        return variant, f"{variant} ONNX graph serves (parity passed)"
    if variant == "fp32":
        return variant, f"{intended} rejected, the fp32 ONNX graph serves instead"
    return variant, "no ONNX graph passed parity: the PyTorch model serves"


def _mb(paths) -> float:
    return round(sum(p.stat().st_size for p in paths) / 2**20, 2)


def _latency(cfg: OptimizeConfig, config: dict, model_dir: Path, reference_model, built, classifiers):
    """PyTorch eager vs every graph that was built, on CPU; and the sizes on disk."""
    max_len = config["max_position_embeddings"]
    lengths = sorted({min(n, max_len) for n in cfg.latency.sequence_lengths})
    shapes = [(b, n) for b in cfg.latency.batch_sizes for n in lengths]
    sizes = {"pytorch": _mb(list(model_dir.glob("*.safetensors")) + list(model_dir.glob("*.bin")))}
    sizes |= {f"ort-{v}": _mb([path]) for v, path in built.items()}
    runners = {"pytorch": torch_runner(reference_model)}
    runners |= {f"ort-{v}": clf.run for v, clf in classifiers.items()}
    names = next(iter(classifiers.values())).input_names if classifiers else ["input_ids", "attention_mask"]
    rows = latency_rows(runners, names, config["vocab_size"], shapes, cfg.latency.warmup, cfg.latency.iterations, sizes)
    return rows, sizes


def optimize(
    cfg: OptimizeConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> OptimizedModel:
    """Build the ONNX variants, gate each on parity with PyTorch, time them, and choose what serves."""
    splits = load_splits(data)
    test = splits["test"]
    if len(test) == 0:
        raise PipelineInputError(
            f"optimize: the evaluation set (test split of {data.uri}) is empty; parity with PyTorch cannot be checked"
        )
    model_dir = materialize(model.uri)
    config = _check_model(model_dir, data)
    key = hash_json(
        cfg.model_dump(exclude={"retry", "latency", "enabled"}), data.fingerprint, model.uri, code_fingerprint()
    )
    workdir = ws.local_dir("optimize", key)

    train_texts = list(splits["train"].shuffle(seed=0)["text"][: cfg.calibration_samples])
    try:
        built, rejected, fused = build_variants(cfg, model_dir, workdir, train_texts)
    except ExportError as e:
        raise PipelineInputError(
            f"optimize: ONNX export of {model.uri} failed ({type(e).__name__}): {str(e).splitlines()[0]}"
        ) from e

    reference_clf = TextClassifier(model_dir)
    reference = reference_clf.logits(list(test["text"]), cfg.batch_size)
    ref_scores = score(list(test["label"]), reference.argmax(axis=1).tolist(), data.labels)
    classifiers, parity, failed = _gate_variants(cfg, built, model_dir, reference, test, data.labels)
    reasons = [f"{v}: {why}" for v, why in (rejected | failed).items()]
    for why in reasons:
        reporting.logger().warning("optimize: %s", why)
    variant, verdict = _choose(cfg, parity)
    latency, sizes = _latency(cfg, config, model_dir, reference_clf.model, built, classifiers)

    served = built.get(variant)
    fields = {
        "onnx_file": served.name if served else None,
        "variant": variant,
        "passed": variant != "pytorch",
        "verdict": verdict,
        "reasons": reasons,
        "parity": parity,
        "reference": {"accuracy": ref_scores.accuracy, "macro_f1": ref_scores.macro_f1},
        "fused_ops": fused,
        "latency": latency,
        "sizes_mb": sizes,
        "eval_size": len(test),
    }
    (workdir / "report.json").write_text(json.dumps({**fields, "parity": _parity_rows(parity)}, indent=2))
    run_id = _log_to_mlflow(cfg, fields, data, model, tracking, parent_run_id)
    uri = publish_dir(workdir, ws.uri("optimize", key))
    result = OptimizedModel(uri=uri, **fields, mlflow_run_id=run_id)
    _report(result, tracking)
    return result


def _log_to_mlflow(cfg: OptimizeConfig, fields: dict, data, model, tracking: Tracking, parent_run_id) -> str:
    """A handful of metrics (what serves, its parity and speed-up) and the full tables as artifacts.

    One metric per latency cell drew 44 one-bar charts in MLflow; the tables read better as tables.
    """
    variant, parity, latency = fields["variant"], fields["parity"], fields["latency"]
    tags = {
        "zero2one.data_fingerprint": data.fingerprint,
        "zero2one.finetune_run_id": model.mlflow_run_id,
        "zero2one.optimize.variant": variant,
    }
    metrics = {f"reference_{k}": v for k, v in fields["reference"].items()}
    metrics["fused_attention_nodes"] = fields["fused_ops"].get("Attention", 0)
    if variant in parity:
        metrics |= {"served_agreement": parity[variant].agreement, "served_macro_f1": parity[variant].macro_f1}
        served = [r["p50_ms"] for r in latency if r["backend"] == f"ort-{variant}"]
        eager = [r["p50_ms"] for r in latency if r["backend"] == "pytorch"]
        if served and eager:  # same shapes in the same order: the median speed-up over the table
            metrics["served_speedup"] = float(np.median([e / s for e, s in zip(eager, served, strict=True)]))
    with stage_run(tracking, "optimize", parent_run_id, tags) as run:
        mlflow.log_params({"quantization": cfg.quantization, "opset": cfg.opset, "variant": variant})
        mlflow.log_metrics(metrics)
        mlflow.log_table(pd.DataFrame(latency), artifact_file="optimize/latency.json")
        mlflow.log_table(pd.DataFrame(_parity_rows(parity)), artifact_file="optimize/parity.json")
        mlflow.log_dict({**fields, "parity": _parity_rows(parity)}, "optimize/report.json")
    return run.info.run_id


def _parity_rows(parity: dict[str, Parity]) -> list[dict]:
    return [{"variant": v, **p.model_dump()} for v, p in parity.items()]


def _report(result: OptimizedModel, tracking: Tracking) -> None:
    reporting.table("optimize-latency", result.latency, description="p50/p95 latency in ms, CPU, same thread count")
    reporting.table("optimize-parity", _parity_rows(result.parity), description=f"vs PyTorch, {result.eval_size} texts")
    reasons = "".join(f"\n- {r}" for r in result.reasons)
    fused = ", ".join(f"{op} {n}" for op, n in sorted(result.fused_ops.items())) or "none"
    reporting.markdown(
        "optimize-summary",
        f"# Optimization: {result.verdict}\n\nServing artifact: `{result.onnx_uri or 'PyTorch model'}`{reasons}\n\n"
        f"Parity with PyTorch (accuracy {result.reference['accuracy']:.4f}, macro-F1 "
        f"{result.reference['macro_f1']:.4f}) on {result.eval_size} test texts:\n\n"
        f"{reporting.md_table(_parity_rows(result.parity))}\n\nLatency (ms) and size (MB):\n\n"
        f"{reporting.md_table(result.latency)}\n\nFused ops: {fused}  \n"
        f"MLflow run: [{result.mlflow_run_id}]({tracking.run_url(result.mlflow_run_id)})\n",
    )
    agreement = ", ".join(f"{v} {p.agreement:.1%} agreement" for v, p in result.parity.items()) or "no graph built"
    reporting.logger().info("optimize: %s (%s)", result.verdict, agreement)
