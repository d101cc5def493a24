"""ONNX export of a span reader, dynamic int8 quantisation, and the parity that gates it (span agreement).

Parity is judged on decoded answers, not logits: int8 may move logits a little, and what matters to a user is
whether the same span comes back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from models.span_reader import Span
from tasks.kinds.answers.features import INPUT_KEYS, Runner


def export_onnx(model, tokenizer, path: str | Path) -> Path:
    """fp32 ONNX with dynamic batch and sequence axes (legacy exporter: the dynamo one specialises sizes here).

    Exported with eager attention: onnxruntime's optimizer fuses that pattern into Attention nodes (measured: 6 of
    6 layers), the SDPA pattern into none."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["who is it?", "what is it?"], ["it is a reader model.", "a model."], padding=True)
    names = [k for k in INPUT_KEYS if k in sample]
    inputs = tuple(torch.tensor(sample[k]) for k in names)
    axes = {k: {0: "batch", 1: "sequence"} for k in [*names, "start_logits", "end_logits"]}

    class _Logits(torch.nn.Module):  # a plain (start, end) tuple: ONNX needs positional outputs
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = self.inner(**dict(zip(names, args, strict=True)))
            return out.start_logits, out.end_logits

    # On a copy: switching attention back and forth on the live model left its padded batches wrong (transformers
    # 5.25: logits off by 0.1 after the switch back; measured against one-row runs).
    eager = copy.deepcopy(model).eval()
    eager.set_attn_implementation("eager")
    torch.onnx.export(
        _Logits(eager), inputs, str(path), input_names=names, output_names=["start_logits", "end_logits"],
        dynamic_axes=axes, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path


def quantize_int8(
    fp32_path: str | Path, int8_path: str | Path, num_heads: int, hidden_size: int,
    per_channel: bool = False, keep_head_fp32: bool = False,
) -> dict:  # fmt: skip
    """Fuse BERT attention (onnxruntime's transformer optimizer), then dynamic int8 weights; returns fusion counts.

    `per_channel` scales each output channel on its own; `keep_head_fp32` leaves the span head (qa_outputs) in fp32:
    the two knobs for a parity gate that fails where start/end logits are close between windows."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fused_path = Path(int8_path).with_suffix(".fused.onnx")
    optimized = optimize_model(str(fp32_path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    optimized.save_model_to_file(str(fused_path))
    fusions = optimized.get_fused_operator_statistics()
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # fused ops have untyped outputs (as tasks/optimize)
    model = onnx.load(str(fused_path))
    head = [n.name for n in model.graph.node if keep_head_fp32 and "qa_outputs" in n.name]
    quantize_dynamic(
        str(fused_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=per_channel,
        nodes_to_exclude=head, extra_options=options,
    )  # fmt: skip
    return {k: v for k, v in fusions.items() if v} | ({"fp32_head_nodes": len(head)} if head else {})


def onnx_runner(path: str | Path, threads: int = 2) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}

    def run(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = session.run(["start_logits", "end_logits"], {k: v for k, v in batch.items() if k in wanted})
        return start, end

    return run


def span_agreement(reference: Mapping[str, Span], candidate: Mapping[str, Span]) -> float:
    """Share of questions where both readers return the same character span (or both say "no answer")."""
    if not reference:
        raise ValueError("span_agreement: no reference answers")
    same = sum((reference[q].start, reference[q].end) == (candidate[q].start, candidate[q].end) for q in reference)
    return same / len(reference)
