"""The optimize stage: the fine-tuned classifier as an ONNX graph, fused for ONNX Runtime and quantized to int8.

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

Where things live: `config` (settings), `variants` (export, fusions, quantization), `parity` (the gate against
PyTorch), `latency` (the timing table), `stage` (the stage function that ties them together). The result types
`OptimizedModel` and `Parity` are in `tasks/results/`.
"""

from tasks.optimize.config import FILES, LatencyConfig, OptimizeConfig
from tasks.optimize.latency import latency_rows, synthetic_inputs, time_ms, torch_runner
from tasks.optimize.parity import check_parity
from tasks.optimize.stage import optimize
from tasks.optimize.variants import build_variants, quantize

__all__ = [
    "FILES",
    "LatencyConfig",
    "OptimizeConfig",
    "build_variants",
    "check_parity",
    "latency_rows",
    "optimize",
    "quantize",
    "synthetic_inputs",
    "time_ms",
    "torch_runner",
]
