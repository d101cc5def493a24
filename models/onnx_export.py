"""A saved Hugging Face classifier as an ONNX graph, fused for ONNX Runtime.

Exporter: the TorchScript one, `torch.onnx.export(..., dynamo=False)`. The dynamo exporter (the
default since torch 2.9) needs `onnxscript`, which we do not ship, and ONNX Runtime's BERT fusions
pattern-match the graphs the TorchScript exporter writes. Attention is exported from the "eager"
implementation: from SDPA the exporter writes loose MatMul/Softmax/Where ops that the fuser does
not recognise (measured on the tiny model: 0 fused Attention nodes instead of one per layer).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from onnxruntime.transformers.optimizer import optimize_model
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ExportError = torch.onnx.errors.OnnxExporterError  # unsupported op or shape: a retry cannot fix it


class LogitsOnly(nn.Module):
    """The exporter needs positional tensors in and one tensor out; HF models take kwargs and return a ModelOutput."""

    def __init__(self, model: nn.Module, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).logits


def _sample_inputs(input_names: list[str], vocab_size: int) -> tuple[torch.Tensor, ...]:
    """Batch 2, length 8, one padded row: size-1 dims would be specialised, and padding must be traced."""
    gen = torch.Generator().manual_seed(0)
    values = {
        "input_ids": torch.randint(5, max(vocab_size, 6), (2, 8), generator=gen),
        "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3]),
        "token_type_ids": torch.zeros(2, 8, dtype=torch.long),
    }
    return tuple(values[name] for name in input_names)


def export_onnx(model_dir: str | Path, path: str | Path, opset: int = 17) -> list[str]:
    """Export the classifier in `model_dir` to `path` with dynamic batch and sequence axes; returns its input names.

    Raises `ExportError` when an op or shape cannot be exported.
    """
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    # eval() on the wrapper, not only the model: the exporter restores the wrapper's mode recursively afterwards.
    wrapper = LogitsOnly(model, names).eval()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    torch.onnx.export(
        wrapper,
        _sample_inputs(names, model.config.vocab_size),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**dynamic, "logits": {0: "batch"}},
    )
    return names


def optimize_graph(src: str | Path, dst: str | Path, model_dir: str | Path) -> dict[str, int]:
    """ONNX Runtime's BERT fusions (Attention, EmbedLayerNormalization, SkipLayerNormalization, Gelu).

    Returns the count of each fused op, so callers can check that attention really was fused.
    """
    config = json.loads(Path(model_dir, "config.json").read_text())
    optimized = optimize_model(
        str(src),
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
    )
    optimized.save_model_to_file(str(dst))
    return {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
