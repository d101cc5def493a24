"""Stage 6, optimize: the fine-tuned classifier as an ONNX graph, fused for ONNX Runtime and quantized to int8.

Export with dynamic batch and sequence axes -> ONNX Runtime's BERT fusions (fp32) -> int8
quantization (`dynamic` by default; `static` calibrates on texts from the train split). Every
variant must pass a parity gate against PyTorch on the whole test split before it may serve:
prediction agreement >= `min_agreement`, accuracy and macro-F1 at most `max_metric_drop` lower.
A variant that fails is not used and the reason is recorded: serving falls back to the fp32
graph, or to PyTorch when no graph passed - quality never degrades silently.

A quick latency table (p50/p95 at batch 1 and 32, two sequence lengths, PyTorch eager vs ORT fp32
vs ORT int8, on CPU with the same thread count) and the sizes on disk go to MLflow and Prefect;
`bench/inference.py` measures thoroughly. The register stage logs the chosen graph with the model
version, so `mlflow.pyfunc.load_model` serves it without PyTorch.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import onnx
import pandas as pd
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from pydantic import BaseModel, ConfigDict, Field

from models.classifier import TextClassifier
from models.onnx_classifier import OnnxClassifier, load_tokenizer
from models.onnx_export import ExportError, export_onnx, optimize_graph
from tasks import reporting
from tasks.data import PreparedData, load_splits
from tasks.errors import PipelineInputError
from tasks.evaluate import score
from tasks.faults import maybe_fail
from tasks.finetune import FinetunedModel
from tasks.fingerprint import code_fingerprint, hash_json
from tasks.orchestration import RetryPolicy
from tasks.storage import materialize, publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import Workspace, join

Variant = Literal["int8", "fp32", "pytorch"]
FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}


class LatencyConfig(BaseModel):
    """The quick latency table of the stage; `bench/inference.py` measures with more iterations."""

    model_config = ConfigDict(extra="forbid")

    batch_sizes: list[int] = Field([1, 32], min_length=1, description="Batch sizes to time.")
    sequence_lengths: list[int] = Field(
        [32, 128], min_length=1, description="Sequence lengths to time (capped at the model's maximum)."
    )
    warmup: int = Field(2, ge=0, description="Untimed runs before each measurement.")
    iterations: int = Field(10, ge=1, description="Timed runs per backend, batch size and length.")


class OptimizeConfig(BaseModel):
    """ONNX export, graph fusions, int8 quantization and the parity gate a variant must pass to serve."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the stage (false: serve the PyTorch model).")
    quantization: Literal["dynamic", "static", "none"] = Field(
        "dynamic", description="int8 quantization: dynamic, static (calibrated on train texts), or none (fp32)."
    )
    opset: int = Field(17, ge=14, le=21, description="ONNX opset of the export.")
    weight_type: Literal["int8", "uint8"] = Field("int8", description="Type of the quantized weights.")
    per_channel: bool = Field(False, description="One quantization scale per output channel of each weight.")
    reduce_range: bool = Field(False, description="7-bit weights (for CPUs without VNNI).")
    calibration_samples: int = Field(128, gt=0, description="Train texts that calibrate static quantization.")
    quantization_options: dict[str, Any] = Field(
        {}, description="Passed as `extra_options` to onnxruntime.quantization (e.g. TensorQuantOverrides)."
    )
    min_agreement: float = Field(0.99, ge=0, le=1, description="Share of test predictions that must match PyTorch.")
    max_metric_drop: float = Field(
        0.005, ge=0, le=1, description="Largest allowed drop of test accuracy and macro-F1 (0.005 = 0.5 points)."
    )
    batch_size: int = Field(64, gt=0, description="Batch size of the parity run.")
    latency: LatencyConfig = LatencyConfig()
    retry: RetryPolicy = RetryPolicy(retries=1)


class Parity(BaseModel):
    """One ONNX variant against PyTorch on the test split."""

    agreement: float
    accuracy: float
    macro_f1: float
    accuracy_drop: float
    macro_f1_drop: float
    max_abs_logit_diff: float
    passed: bool
    reason: str | None = None


class OptimizedModel(BaseModel):
    """What the optimize stage produced, which graph serves, and why.

    `passed` (what the promotion gate reads): an ONNX graph that matches PyTorch serves. A rejected
    int8 graph does not fail it - the fp32 graph serves instead - but it is named in `reasons`.
    """

    uri: str
    onnx_file: str | None
    variant: Variant
    passed: bool
    verdict: str
    reasons: list[str]
    parity: dict[str, Parity]
    reference: dict[str, float]
    fused_ops: dict[str, int]
    latency: list[dict]
    sizes_mb: dict[str, float]
    eval_size: int
    mlflow_run_id: str

    @property
    def onnx_uri(self) -> str | None:
        """The chosen graph (None: PyTorch serves)."""
        return join(self.uri, self.onnx_file) if self.onnx_file else None


# ---------------------------------------------------------------- building the variants


class _Calibration(CalibrationDataReader):
    """Fixed-length batches of encoded train texts, as `quantize_static` reads them."""

    def __init__(self, feeds: dict[str, np.ndarray], batch_size: int = 8):
        n = len(next(iter(feeds.values())))
        self._batches = iter([{k: v[i : i + batch_size] for k, v in feeds.items()} for i in range(0, n, batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize(
    cfg: OptimizeConfig, fused: Path, plain: Path, dst: Path, calibration: dict[str, np.ndarray] | None = None
) -> None:
    """int8 weights (and, static, activations) with `onnxruntime.quantization`."""
    weight_type = QuantType.QInt8 if cfg.weight_type == "int8" else QuantType.QUInt8
    common = {"per_channel": cfg.per_channel, "reduce_range": cfg.reduce_range, "weight_type": weight_type}
    if cfg.quantization == "dynamic":
        # Shape inference cannot type the outputs of ORT's fused contrib ops (Attention, SkipLayerNormalization);
        # the quantizer's own advice is to declare them float.
        options = {"DefaultTensorType": onnx.TensorProto.FLOAT, **cfg.quantization_options}
        quantize_dynamic(fused, dst, extra_options=options, **common)
    else:
        # Static scales cannot be calibrated through the fused contrib ops, so the plain export is quantized
        # (QDQ format); ONNX Runtime fuses the QDQ pairs into integer kernels when it loads the graph.
        reader = _Calibration(calibration or {})
        quantize_static(
            plain, dst, reader, quant_format=QuantFormat.QDQ, extra_options=cfg.quantization_options, **common
        )


def build_variants(
    cfg: OptimizeConfig, model_dir: Path, workdir: Path, calibration_texts: list[str] | None = None
) -> tuple[dict[str, Path], dict[str, str], dict[str, int]]:
    """Export, fuse and quantize into `workdir`.

    Returns the graphs that were built, the reasons for those that could not be, and the fused op counts.
    Raises `ExportError` when the model cannot be exported at all.
    """
    log = reporting.logger()
    built: dict[str, Path] = {}
    rejected: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="zero2one-onnx-") as tmp:
        plain = Path(tmp, "export.onnx")
        t0 = time.perf_counter()
        export_onnx(model_dir, plain, cfg.opset)
        built["fp32"] = workdir / FILES["fp32"]
        fused = optimize_graph(plain, built["fp32"], model_dir)
        layers = json.loads((model_dir / "config.json").read_text()).get("num_hidden_layers", 0)
        if fused.get("Attention", 0) < layers:
            log.warning(
                "%d of %d attention layers fused: the ONNX graph will be slower", fused.get("Attention", 0), layers
            )
        log.info("exported and fused in %.1f s: %s", time.perf_counter() - t0, fused)
        if cfg.quantization != "none":
            dst = workdir / FILES["int8"]
            dst.unlink(missing_ok=True)  # never mistake an older attempt's graph for this one's
            calibration = None
            if cfg.quantization == "static":
                calibration = OnnxClassifier(plain, model_dir).encode(
                    (calibration_texts or [])[: cfg.calibration_samples]
                )
            try:
                quantize(cfg, built["fp32"], plain, dst, calibration)
                built["int8"] = dst
            except Exception as e:  # the quantizer raises many types; a graph it cannot build is one we do not use
                rejected["int8"] = f"{cfg.quantization} quantization failed: {type(e).__name__}: {e}"
                log.warning("int8 variant not built: %s", rejected["int8"])
    return built, rejected, fused


# ---------------------------------------------------------------- parity and latency


def check_parity(
    cfg: OptimizeConfig, reference: np.ndarray, candidate: np.ndarray, y_true: list[int], labels: list[str]
) -> Parity:
    """Agreement with PyTorch, metric drops and the largest logit difference; `passed` applies the gate."""
    ref_pred, cand_pred = reference.argmax(axis=1), candidate.argmax(axis=1)
    ref, cand = score(y_true, ref_pred.tolist(), labels), score(y_true, cand_pred.tolist(), labels)
    parity = {
        "agreement": float((ref_pred == cand_pred).mean()),
        "accuracy": cand.accuracy,
        "macro_f1": cand.macro_f1,
        "accuracy_drop": ref.accuracy - cand.accuracy,
        "macro_f1_drop": ref.macro_f1 - cand.macro_f1,
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
    }
    problems = []
    if parity["agreement"] < cfg.min_agreement:
        problems.append(f"prediction agreement {parity['agreement']:.4f} < optimize.min_agreement={cfg.min_agreement}")
    for metric in ("accuracy", "macro_f1"):
        if parity[f"{metric}_drop"] > cfg.max_metric_drop + 1e-9:
            problems.append(
                f"test {metric} drops {parity[f'{metric}_drop']:.4f} > optimize.max_metric_drop={cfg.max_metric_drop}"
            )
    return Parity(**parity, passed=not problems, reason="; ".join(problems) or None)


def synthetic_inputs(input_names: list[str], vocab_size: int, batch: int, length: int) -> dict[str, np.ndarray]:
    """Fixed-shape inputs without padding, so every backend does exactly the same work."""
    rng = np.random.default_rng(0)
    values = {
        "input_ids": rng.integers(5, max(vocab_size, 6), (batch, length), dtype=np.int64),
        "attention_mask": np.ones((batch, length), dtype=np.int64),
        "token_type_ids": np.zeros((batch, length), dtype=np.int64),
    }
    return {name: values[name] for name in input_names}


def torch_runner(model: torch.nn.Module) -> Callable[[dict[str, np.ndarray]], Any]:
    """PyTorch eager on the same numpy inputs as ONNX Runtime."""

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]):
        return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits

    return run


def time_ms(fn: Callable[[], Any], warmup: int, iterations: int) -> tuple[float, float]:
    """p50 and p95 wall time of `fn` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def latency_rows(
    runners: dict[str, Callable[[dict[str, np.ndarray]], Any]],
    input_names: list[str],
    vocab_size: int,
    shapes: list[tuple[int, int]],
    warmup: int,
    iterations: int,
    sizes_mb: dict[str, float] | None = None,
) -> list[dict]:
    """One row per backend and (batch, length); backends alternate per shape so they share the machine's mood."""
    rows = []
    for batch, length in shapes:
        feeds = synthetic_inputs(input_names, vocab_size, batch, length)
        for backend, run in runners.items():
            p50, p95 = time_ms(lambda run=run, feeds=feeds: run(feeds), warmup, iterations)
            row = {"backend": backend, "batch": batch, "seq_len": length, "p50_ms": round(p50, 3)}
            row["p95_ms"] = round(p95, 3)
            if sizes_mb is not None:
                row["size_mb"] = sizes_mb.get(backend, float("nan"))
            rows.append(row)
    return rows


def _mb(paths) -> float:
    return round(sum(p.stat().st_size for p in paths) / 2**20, 2)


# ---------------------------------------------------------------- the stage


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


def optimize(
    cfg: OptimizeConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> OptimizedModel:
    """Build the ONNX variants, gate each on parity with PyTorch, time them, and choose what serves."""
    log = reporting.logger()
    maybe_fail("optimize", ws.local_dir("faults"))
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

    # Parity on the whole test split, PyTorch as the reference.
    texts, y_true = list(test["text"]), list(test["label"])
    reference_clf = TextClassifier(model_dir)
    reference = reference_clf.logits(texts, cfg.batch_size)
    ref_scores = score(y_true, reference.argmax(axis=1).tolist(), data.labels)
    threads = torch.get_num_threads()  # ORT gets as many threads as PyTorch: a fair race
    classifiers: dict[str, OnnxClassifier] = {}
    parity: dict[str, Parity] = {}
    for variant, path in built.items():
        try:
            classifiers[variant] = OnnxClassifier(path, model_dir, threads=threads)
        except Exception as e:  # ORT rejects the graph: that variant cannot serve
            rejected[variant] = f"ONNX Runtime cannot load it: {type(e).__name__}: {e}"
            continue
        parity[variant] = check_parity(
            cfg, reference, classifiers[variant].logits(texts, cfg.batch_size), y_true, data.labels
        )
        if not parity[variant].passed:
            rejected[variant] = f"parity failed: {parity[variant].reason}"

    intended: Variant = "fp32" if cfg.quantization == "none" else "int8"
    variant: Variant = next((v for v in ("int8", "fp32") if v in parity and parity[v].passed), "pytorch")
    reasons = [f"{v}: {why}" for v, why in rejected.items()]
    if variant == intended:
        verdict = f"{variant} ONNX graph serves (parity passed)"
    elif variant == "fp32":
        verdict = f"{intended} rejected, the fp32 ONNX graph serves instead"
    else:
        verdict = "no ONNX graph passed parity: the PyTorch model serves"
    for why in reasons:
        log.warning("optimize: %s", why)

    # Latency: PyTorch eager vs every graph that was built, on CPU.
    max_len = config["max_position_embeddings"]
    lengths = sorted({min(n, max_len) for n in cfg.latency.sequence_lengths})
    shapes = [(b, n) for b in cfg.latency.batch_sizes for n in lengths]
    sizes = {"pytorch": _mb(list(model_dir.glob("*.safetensors")) + list(model_dir.glob("*.bin")))}
    sizes |= {f"ort-{v}": _mb([path]) for v, path in built.items()}
    runners = {"pytorch": torch_runner(reference_clf.model)}
    runners |= {f"ort-{v}": clf.run for v, clf in classifiers.items()}
    names = next(iter(classifiers.values())).input_names if classifiers else ["input_ids", "attention_mask"]
    latency = latency_rows(
        runners, names, config["vocab_size"], shapes, cfg.latency.warmup, cfg.latency.iterations, sizes
    )

    served = built.get(variant)
    result_fields = {
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
    (workdir / "report.json").write_text(
        json.dumps({**result_fields, "parity": {k: p.model_dump() for k, p in parity.items()}}, indent=2)
    )
    tags = {
        "zero2one.data_fingerprint": data.fingerprint,
        "zero2one.finetune_run_id": model.mlflow_run_id,
        "zero2one.optimize.variant": variant,
    }
    with stage_run(tracking, "optimize", parent_run_id, tags) as run:
        mlflow.log_params(
            {"quantization": cfg.quantization, "opset": cfg.opset, "variant": variant, "intra_op_threads": threads}
        )
        mlflow.log_metrics({f"reference_{k}": v for k, v in result_fields["reference"].items()})
        mlflow.log_metric("fused_attention_nodes", fused.get("Attention", 0))
        for name, p in parity.items():
            mlflow.log_metrics({f"parity_{name}_{k}": float(v) for k, v in p.model_dump(exclude={"reason"}).items()})
        for row in latency:
            cell = f"{row['backend']}_b{row['batch']}_s{row['seq_len']}"
            mlflow.log_metrics({f"latency_{cell}_p50_ms": row["p50_ms"], f"latency_{cell}_p95_ms": row["p95_ms"]})
        mlflow.log_metrics({f"size_{k}_mb": v for k, v in sizes.items()})
        mlflow.log_table(pd.DataFrame(latency), artifact_file="optimize/latency.json")
        mlflow.log_table(pd.DataFrame(_parity_rows(parity)), artifact_file="optimize/parity.json")
        mlflow.log_dict({**result_fields, "parity": _parity_rows(parity)}, "optimize/report.json")
    uri = publish_dir(workdir, ws.uri("optimize", key))
    result = OptimizedModel(uri=uri, **result_fields, mlflow_run_id=run.info.run_id)
    _report(result, tracking)
    return result


def _parity_rows(parity: dict[str, Parity]) -> list[dict]:
    return [{"variant": v, **p.model_dump()} for v, p in parity.items()]


def _report(result: OptimizedModel, tracking: Tracking) -> None:
    reporting.table("optimize-latency", result.latency, description="p50/p95 latency in ms, CPU, same thread count")
    reporting.table("optimize-parity", _parity_rows(result.parity), description=f"vs PyTorch, {result.eval_size} texts")
    reasons = "".join(f"\n- {r}" for r in result.reasons)
    reporting.markdown(
        "optimize-summary",
        f"# Optimization: {result.verdict}\n\nServing artifact: `{result.onnx_uri or 'PyTorch model'}`{reasons}\n\n"
        f"Parity with PyTorch (accuracy {result.reference['accuracy']:.4f}, macro-F1 "
        f"{result.reference['macro_f1']:.4f}) on {result.eval_size} test texts:\n\n"
        f"{reporting.md_table(_parity_rows(result.parity))}\n\nLatency (ms) and size (MB):\n\n"
        f"{reporting.md_table(result.latency)}\n\nFused ops: {result.fused_ops}  \n"
        f"MLflow run: [{result.mlflow_run_id}]({tracking.run_url(result.mlflow_run_id)})\n",
    )
    reporting.logger().info("optimize: %s; parity %s", result.verdict, _parity_rows(result.parity))
