"""int8 weights, fp32 arithmetic: onnxruntime's MatMulNBits at 8 bits, one scale per block of 32 weights.

Why beside dynamic int8: dynamic int8 also rounds every MatMul's activations to 8 bits, one scale per tensor, and
where a model's top two scores are close (a tagger's rare entity words, a weakly trained reader's flat span logits)
that flips argmaxes. On the WNUT-17 tagger (all 1,287 test sentences) dynamic per-channel int8 tagged 90.0% of the
entity words as PyTorch does, these weights 99.2% (docs/entities.md). What it buys is a smaller file: only MatMul
weights shrink (the embeddings and a fused Attention node's weights stay fp32). It runs slower than the fp32 graph,
its weights dequantized on every call: 1.1-1.7x PyTorch's speed where fp32 gives 1.7-1.9x (bench/kinds_latency.py).
"""

from __future__ import annotations

import logging
from pathlib import Path


def quantize_weights_int8(
    src: str | Path, dst: str | Path, block_size: int = 32, accuracy_level: int | None = None
) -> str:
    """`src`'s MatMul weights as symmetric int8 in blocks of `block_size` (MatMulNBits); writes and returns `dst`.

    `accuracy_level` 4 makes the kernels round activations to int8 too, per block (ONNX Runtime's setting)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    settings = {"block_size": block_size, "is_symmetric": True, "accuracy_level": accuracy_level}
    config = DefaultWeightOnlyQuantConfig(bits=8, **settings)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, algo_config=config, **settings)
    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # it logs two INFO lines per MatMul
    try:
        quantizer.process()
    finally:
        quiet.setLevel(level)
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return str(dst)
