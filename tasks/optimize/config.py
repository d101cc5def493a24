"""The optimize stage's settings and its result: which graph serves, and why."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.orchestration import RetryPolicy
from tasks.workspace import join

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
