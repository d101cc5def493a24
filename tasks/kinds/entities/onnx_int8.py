"""The token classifier as ONNX (fp32, BERT-fused) and dynamic int8, and the parity measure that gates the int8 graph.

Parity is token-label agreement: the share of words whose tag the int8 graph predicts the same as PyTorch fp32, over
the same words read through the same windows (the Tagger of models/token_classifier.py). The classifier's exporter
is reused for its wrapper and fusions; only the model class and the per-token output axis differ here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from pydantic import BaseModel
from transformers import AutoModelForTokenClassification, AutoTokenizer

from models.int8_weights import quantize_weights_int8
from models.onnx_export import LogitsOnly, _sample_inputs, optimize_graph
from models.token_classifier import Tagger


class OnnxFiles(BaseModel):
    fp32: str  # fused fp32 graph
    int8: str  # dynamic int8 of the fused graph: int8 weights and activations
    int8_weights: str | None = None  # int8 weights, fp32 arithmetic (models/int8_weights.py), when asked for
    fused_ops: dict[str, int]  # ORT fusions found (Attention should be one per layer)

    def graphs(self) -> dict[str, str]:
        """Variant -> file, in the order the optimize stage tries them: smallest first."""
        weights = {"int8-weights": self.int8_weights} if self.int8_weights else {}
        return {"int8": self.int8} | weights | {"fp32": self.fp32}


def export_token_classifier(
    model_dir: str | Path, out_dir: str | Path, opset: int = 17, per_channel: bool = True, int8_weights: bool = False
) -> OnnxFiles:
    """Export `model_dir` (train.py's output) with dynamic batch and sequence axes, fuse, then quantize to dynamic
    int8 (int8 arithmetic), and to int8 weights with fp32 arithmetic where `int8_weights` asks.

    Per-channel scales by default: on WNUT-17 test (MiniLM, seed 0) per-tensor int8 agreed with PyTorch on 87.2% of
    entity words and lost 2.3 points of F1; per-channel agreed on 93.8% and lost 0.15 (docs/entities.md).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    wrapper = LogitsOnly(model, names).eval()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    plain = out / "model.onnx"
    torch.onnx.export(
        wrapper,
        _sample_inputs(names, model.config.vocab_size),
        str(plain),
        dynamo=False,
        opset_version=opset,
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**dynamic, "logits": {0: "batch", 1: "sequence"}},
    )
    fused = out / "model.fused.onnx"
    ops = optimize_graph(plain, fused, model_dir)
    int8 = quantize_int8(fused, out / "model.int8.onnx", per_channel)
    weights = quantize_weights_int8(fused, out / "model.int8-weights.onnx") if int8_weights else None
    return OnnxFiles(fp32=str(fused), int8=int8, int8_weights=weights, fused_ops=ops)


def quantize_int8(fused: str | Path, dst: str | Path, per_channel: bool = True) -> str:
    """Dynamic int8 weights (onnxruntime.quantization) of the fused fp32 graph; returns `dst`."""
    # Shape inference cannot type the outputs of ORT's fused contrib ops; the quantizer asks to declare them float.
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(str(fused), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel, extra_options=options)
    return str(dst)


def agreement(reference: list[list[str]], candidate: list[list[str]]) -> dict[str, float]:
    """Share of words tagged the same by both: over all words, and over entity words (either side not 'O').

    The second is the one to gate on: entity words are ~5% of WNUT-17's, so 99.7% of all words agreeing still let
    per-tensor int8 lose 2.3 points of test entity F1 (docs/entities.md).
    """
    pairs = [(x, y) for a, b in zip(reference, candidate, strict=True) for x, y in zip(a, b, strict=True)]
    entity = [x == y for x, y in pairs if x != "O" or y != "O"]
    tokens = sum(x == y for x, y in pairs) / len(pairs) if pairs else 1.0
    return {"tokens": tokens, "entity_tokens": sum(entity) / len(entity) if entity else 1.0}


def latency(taggers: dict[str, Tagger], sentences: list[list[str]], batch: int, rounds: int = 5) -> dict[str, float]:
    """Median seconds per batch of `batch` sentences; the taggers take turns each round, so load hits all alike."""
    batches = [sentences[i : i + batch] for i in range(0, len(sentences) - batch + 1, batch)]
    times: dict[str, list[float]] = {name: [] for name in taggers}
    for tagger in taggers.values():  # warm-up
        tagger.tag(batches[0])
    for r in range(rounds):
        order = list(taggers) if r % 2 == 0 else list(reversed(taggers))
        for name in order:
            for b in batches:
                start = time.perf_counter()
                taggers[name].tag(b)
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def write_manifest(files: OnnxFiles, path: str | Path) -> None:
    Path(path).write_text(json.dumps(files.model_dump(), indent=1))
