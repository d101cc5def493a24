"""The optimize stage's settings and the ONNX file names (its result types are in `tasks/results/`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.retry import RetryPolicy

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
