"""Building the ONNX variants: export, ONNX Runtime's BERT fusions (fp32), int8 quantization."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from core import reporting
from models.onnx_classifier import OnnxClassifier
from models.onnx_export import export_onnx, optimize_graph
from tasks.optimize.config import FILES, OptimizeConfig


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
