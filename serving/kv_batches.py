"""The running batch's key/value cache on each runtime the service decodes with: PyTorch, or the ONNX graph.

The engine (`serving/generation_engine.py`) schedules; a runtime only knows how to hold rows of different lengths
in one cache. Both give the same three moves: `prefill` new prompts (a `KVBatch` of their rows, and each row's
next-token logits), `decode` one token for every row, and `extend`/`keep` to let rows join and leave between steps.

- `TorchRuntime`: rows are left-padded in a transformers `DynamicCache`; positions come from the mask
  (`cumsum - 1`) so RoPE sees each row as if it were alone, as `generate()` does.
- `OrtRuntime`: the graph ONNX Runtime GenAI's builder made (`models/onnx_decoder.py`) in a plain `onnxruntime`
  session. Its GroupQueryAttention reads each row's valid length from the attention mask (`sum - 1`) and its cache
  as right-padded, so rows keep their keys at the left and the new token lands at each row's own length.
  Written by hand because ONNX Runtime GenAI's own continuous-batching engine needs a paged-attention graph, which
  its builder makes only for CUDA in fp16/bf16; on CPU its `Engine` batches statically (a request that arrives
  waits until the whole running batch has finished: measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from transformers import DynamicCache

from models.ort_sessions import eos_ids


class KVBatch(Protocol):
    """Rows that decode together, in the engine's row order."""

    def decode(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its next token; returns the logits of the token after it, [rows, vocab]."""

    def extend(self, other: KVBatch) -> None:
        """Append `other`'s rows (just prefilled) after this batch's."""

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (a non-empty subset, in order)."""


class Runtime(Protocol):
    name: str  # what decodes: "pytorch" or "onnx"
    describe: str  # the same for people, in the service's log
    eos: set[int]

    def prefill(self, prompts: list[list[int]]) -> tuple[KVBatch, torch.Tensor]:
        """The prompts through the model once: their rows, and each row's next-token logits [rows, vocab]."""


def runtime_for(generator, onnx_dir: str | None, choice: str, version: str) -> Runtime:
    """What decodes a loaded generator version: its ONNX graph (`choice` auto or onnx, when it has one) or PyTorch."""
    if choice != "pytorch" and onnx_dir:
        return OrtRuntime(onnx_dir)
    if choice == "onnx":
        raise ValueError(
            f"{version} has no ONNX graph that passed the parity gate (see its optimize stage's reasons); "
            "serve it with generation_runtime auto or pytorch"
        )
    pad = generator.tokenizer.pad_token_id
    return TorchRuntime(generator.model, pad if pad is not None else 0)


# ---------------------------------------------------------------------------------------------------- PyTorch


class TorchRuntime:
    """A transformers causal LM (the registered checkpoint)."""

    name = "pytorch"
    describe = "PyTorch"

    def __init__(self, model, pad_id: int):
        self.model, self.pad_id, self.device = model, pad_id, model.device
        self.eos = eos_ids(model.generation_config.eos_token_id)

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> tuple[TorchBatch, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), cache=cache, use_cache=True)
        return TorchBatch(self.model, cache, mask), out.logits[:, -1, :]


class TorchBatch:
    def __init__(self, model, cache: DynamicCache, mask: torch.Tensor):
        self.model, self.cache, self.mask = model, cache, mask  # mask: [rows, cached length], 0 = left padding

    @torch.inference_mode()
    def decode(self, tokens: list[int]) -> torch.Tensor:
        device = self.mask.device
        mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=self.mask.dtype, device=device)], dim=1)
        out = self.model(
            input_ids=torch.tensor(tokens, dtype=torch.long, device=device)[:, None],
            attention_mask=mask,
            position_ids=(mask.sum(dim=1, keepdim=True) - 1).long(),
            cache=self.cache,
            use_cache=True,
        )
        self.mask = mask
        return out.logits[:, -1, :]

    def extend(self, other: TorchBatch) -> None:
        width = max(self.mask.shape[1], other.mask.shape[1])
        layers = [
            (_cat_left_padded(ka, kb, width), _cat_left_padded(va, vb, width))
            for (ka, va, *_), (kb, vb, *_) in zip(self.cache, other.cache, strict=True)
        ]
        self.mask = _cat_left_padded(self.mask, other.mask, width, dim=1)
        self.cache = DynamicCache(ddp_cache_data=layers)

    def keep(self, rows: list[int]) -> None:
        if len(rows) < self.mask.shape[0]:
            index = torch.tensor(rows, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask = self.mask[index]
        used = self.mask.any(dim=0).nonzero()  # cut the leading columns that are padding in every row left
        start = int(used[0]) if len(used) else 0
        if start > 0:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., start:, :], layer.values[..., start:, :]


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, as `generate()` computes them."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _pad_left(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _cat_left_padded(a: torch.Tensor, b: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    return torch.cat([_pad_left(a, width, dim), _pad_left(b, width, dim)])


# ---------------------------------------------------------------------------------------------------- ONNX


class OrtRuntime:
    """A builder graph (`model.onnx` + `genai_config.json`) in an onnxruntime CPU session."""

    name = "onnx"

    def __init__(self, graph_dir: str | Path, threads: int = 0):
        from models.ort_sessions import genai_model_config, ort_session  # here: PyTorch-only never loads ORT

        self.session = ort_session(Path(graph_dir) / "model.onnx", threads)
        genai = genai_model_config(graph_dir)
        self.eos = eos_ids(genai["eos_token_id"])
        decoder = genai["decoder"]
        self.kv_shape = (decoder["num_key_value_heads"], decoder["head_size"])
        self.past = [i.name for i in self.session.get_inputs() if i.name.startswith("past_key_values.")]
        self.outputs = ["logits"] + [o.name for o in self.session.get_outputs() if o.name.startswith("present.")]
        self.dtype = np.float16 if "float16" in self.session.get_inputs()[-1].type else np.float32
        self.describe = f"its ONNX graph ({Path(graph_dir).name}, passed the parity gate)"

    def run(self, ids: np.ndarray, mask: np.ndarray, kv: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward pass: (logits of the last position, present keys/values)."""
        feeds = {"input_ids": ids, "attention_mask": mask} | dict(zip(self.past, kv, strict=True))
        logits, *present = self.session.run(self.outputs, feeds)
        return logits[:, -1, :], present

    def prefill(self, prompts: list[list[int]]) -> tuple[OrtBatch, torch.Tensor]:
        # One prompt per pass: a right-padded prompt batch would need each row's logits at its own last position,
        # and prompts arrive a few at a time while the batch decodes.
        batch, logits = None, []
        for prompt in prompts:
            ids = np.asarray([prompt], dtype=np.int64)
            empty = [np.zeros((1, *self.kv_shape[:1], 0, self.kv_shape[1]), self.dtype) for _ in self.past]
            last, present = self.run(ids, np.ones_like(ids), empty)
            row = OrtBatch(self, present, np.asarray([len(prompt)]))
            logits.append(last)
            if batch is None:
                batch = row
            else:
                batch.extend(row)
        return batch, torch.from_numpy(np.concatenate(logits).astype(np.float32))


class OrtBatch:
    def __init__(self, runtime: OrtRuntime, kv: list[np.ndarray], lengths: np.ndarray):
        self.runtime, self.kv, self.lengths = runtime, kv, lengths  # kv: [rows, heads, width, dim], right-padded

    def decode(self, tokens: list[int]) -> torch.Tensor:
        width = self.kv[0].shape[2]
        mask = (np.arange(width + 1)[None, :] <= self.lengths[:, None]).astype(np.int64)
        logits, self.kv = self.runtime.run(np.asarray(tokens, dtype=np.int64)[:, None], mask, self.kv)
        self.lengths = self.lengths + 1
        return torch.from_numpy(logits.astype(np.float32, copy=False))

    def extend(self, other: OrtBatch) -> None:
        width = max(self.kv[0].shape[2], other.kv[0].shape[2])
        pairs = zip(self.kv, other.kv, strict=True)
        self.kv = [np.concatenate([_pad_right(a, width), _pad_right(b, width)]) for a, b in pairs]
        self.lengths = np.concatenate([self.lengths, other.lengths])

    def keep(self, rows: list[int]) -> None:
        self.lengths = self.lengths[rows]
        width = int(self.lengths.max())  # cut the trailing columns no row left uses
        self.kv = [a[rows, :, :width] for a in self.kv]


def _pad_right(a: np.ndarray, width: int) -> np.ndarray:
    missing = width - a.shape[2]
    return a if missing == 0 else np.pad(a, ((0, 0), (0, 0), (0, missing), (0, 0)))
