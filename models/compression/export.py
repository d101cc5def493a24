"""An in-memory (possibly head-pruned) classifier as fused fp32 and int8 ONNX graphs.

`models/onnx_export.export_onnx` loads its model with `from_pretrained`, which cannot rebuild a head-pruned shape
(`prune.load_compressed` can); this exports the model object instead, with the same exporter settings (TorchScript
exporter, eager attention so ONNX Runtime's fuser recognises it), the same BERT fusions and the optimize stage's
default dynamic int8 quantization.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.compression.prune import HEADS_KEY
from models.onnx_export import LogitsOnly


def _sample(names: list[str], vocab_size: int) -> tuple[torch.Tensor, ...]:
    """Batch 2, length 8, one padded row: size-1 dims would be specialised, and padding must be traced."""
    gen = torch.Generator().manual_seed(0)
    values = {
        "input_ids": torch.randint(5, max(vocab_size, 6), (2, 8), generator=gen),
        "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3]),
        "token_type_ids": torch.zeros(2, 8, dtype=torch.long),
    }
    return tuple(values[name] for name in names)


def export_graphs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, outdir: Path, opset: int = 17
) -> tuple[Path, Path, dict[str, int]]:
    """(fused fp32 graph, int8 graph, fused op counts) written to `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    model.set_attn_implementation("eager")
    wrapper = LogitsOnly(model, names).eval()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    fp32, int8 = outdir / "model-fp32.onnx", outdir / "model-int8.onnx"
    with tempfile.TemporaryDirectory(prefix="zero2one-compress-") as tmp:
        plain = Path(tmp, "export.onnx")
        torch.onnx.export(
            wrapper,
            _sample(names, model.config.vocab_size),
            str(plain),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
        )
        # The fuser reads heads from the graph's reshape, which says -1 (transformers reshapes by head size); it then
        # takes these values only when hidden_size == num_heads x head size, so pass the attention width, which a
        # head-pruned model has smaller than its hidden size (ONNX Runtime's Attention takes [hidden, 3 x width]).
        heads = getattr(model.config, HEADS_KEY, None) or model.config.num_attention_heads
        width = heads * (model.config.hidden_size // model.config.num_attention_heads)
        fused = optimize_model(str(plain), model_type="bert", num_heads=heads, hidden_size=width)
        fused.save_model_to_file(str(fp32))
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # as the optimize stage: fused ops have untyped outputs
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, extra_options=options)
    return fp32, int8, {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
