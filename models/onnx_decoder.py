"""Causal LMs for ONNX Runtime with a KV cache: ONNX Runtime GenAI's model builder, and a decoder that runs its graph.

Chosen: the builder (`python -m onnxruntime_genai.models.builder`), not `torch.onnx.export` of a hand-written
wrapper. It is the field's tool for Llama-family checkpoints: one command turns a `save_pretrained` folder into a
graph with fused operators (GroupQueryAttention with rotary embeddings, SkipSimplifiedLayerNormalization) whose
inputs are `past_key_values.N.key/value` and outputs `present.N.key/value`, and `-p int8` quantizes every MatMul
weight to 8 bits (MatMulNBits, weight-only, block-wise, int8 compute on CPU). Its `Generator` is the decode loop:
the prompt runs once, then one token per step against the cache, with left-padded batches and per-row stopping.
It needs `onnx-ir` (which it imports but does not declare) and pins nothing we cannot use (onnxruntime >= 1.31).
We tokenize with our own Hugging Face tokenizer and feed ids, so a tokenizer the builder's runtime cannot load
(microsoft/onnxruntime-genai#1303) does not matter; architectures it does not handle fail the export, and the
optimize stage then records why PyTorch serves.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime_genai as og
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from models.generator import TextGenerator
from models.onnx_export import ExportError
from models.ort_sessions import eos_ids, genai_model_config

Precision = Literal["fp32", "int8"]
GRAPH = "model.onnx"


def build_decoder(
    model_dir: str | Path, out_dir: str | Path, precision: Precision, options: dict[str, str] | None = None
) -> Path:
    """Run the builder on a checkpoint folder; `out_dir` then holds the graph, `genai_config.json` and tokenizer."""
    out = Path(out_dir)
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model_dir), "-o", str(out)]
    cmd += ["-p", precision, "-e", "cpu", "-c", str(out.parent / f".cache-{out.name}")]
    if options:
        cmd += ["--extra_options", *(f"{k}={v}" for k, v in options.items())]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (out / GRAPH).exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ExportError(f"the ONNX Runtime GenAI builder failed on {model_dir} ({precision}): {' | '.join(tail)}")
    return out


def kv_cache_io(graph_dir: str | Path) -> tuple[list[str], list[str]]:
    """The graph's past key/value inputs and present key/value outputs (empty lists: no KV cache)."""
    graph = onnx.load(str(Path(graph_dir) / GRAPH), load_external_data=False).graph
    past = [i.name for i in graph.input if i.name.startswith("past_key_values.")]
    present = [o.name for o in graph.output if o.name.startswith("present.")]
    return past, present


def graph_size_mb(graph_dir: str | Path) -> float:
    return round(sum(p.stat().st_size for p in Path(graph_dir).glob("model.onnx*")) / 2**20, 2)


class OrtDecoder:
    """A built graph in ONNX Runtime GenAI on CPU: teacher-forced logits and cached greedy or sampled decoding."""

    def __init__(self, graph_dir: str | Path, threads: int = 1):
        config = og.Config(str(graph_dir))
        config.clear_providers()  # CPU
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        self.model = og.Model(config)
        genai = genai_model_config(graph_dir)
        self.context = genai["context_length"]
        self.eos = eos_ids(genai["eos_token_id"])

    def _generator(self, batch: int, max_length: int, **search) -> og.Generator:
        params = og.GeneratorParams(self.model)
        params.set_search_options(batch_size=batch, max_length=max_length, **search)
        return og.Generator(self.model, params)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Next-token logits at every position of one sequence (the prompt pass, as in teacher forcing)."""
        generator = self._generator(1, len(ids))
        generator.append_tokens(np.asarray([ids], dtype=np.int32))
        return np.asarray(generator.get_output("logits"))[0]

    def generate(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, min_new_tokens: int = 0, **search
    ) -> list[list[int]]:
        """New token ids per row (rows stop at eos; what the batch generates after it is dropped)."""
        return self.timed_generate(rows, max_new_tokens, min_new_tokens, **search)[0]

    def timed_generate(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, min_new_tokens: int = 0, **search
    ) -> tuple[list[list[int]], float, float]:
        """`generate`, plus the seconds to the first new token and from there to the last one.

        Rows must have equal lengths: the graph's GroupQueryAttention reads a padded prompt batch as right-padded, so
        left-padded rows would attend to padding (measured: logits off by 8 on a padded row, 5e-6 unpadded).
        """
        width = len(rows[0])
        if any(len(r) != width for r in rows):
            raise ValueError(f"rows of different lengths {sorted({len(r) for r in rows})}: decode them separately")
        ids = np.asarray(rows, dtype=np.int32)
        search = {"do_sample": False} | search
        generator = self._generator(len(rows), width + max_new_tokens, min_length=width + min_new_tokens, **search)
        start = time.perf_counter()
        generator.append_tokens(ids)
        steps = []
        while not generator.is_done():
            generator.generate_next_token()
            steps.append(generator.get_next_tokens().copy())
            if len(steps) == 1:
                first = time.perf_counter()
        end = time.perf_counter()
        new = np.stack(steps, axis=1).tolist() if steps else [[] for _ in rows]
        out = [row[: next((i + 1 for i, t in enumerate(row) if t in self.eos), len(row))] for row in new]
        return out, first - start if steps else 0.0, end - first if steps else 0.0


class OrtTextGenerator(TextGenerator):
    """`TextGenerator` (same chat template, sorting, batching and answer cleanup) decoding with an ORT graph."""

    def __init__(self, graph_dir: str | Path, tokenizer: str | Path | PreTrainedTokenizerBase, threads: int = 1):
        """`tokenizer`: the checkpoint's (a folder, or loaded), for its chat template and exact ids."""
        is_loaded = isinstance(tokenizer, PreTrainedTokenizerBase)
        self.tokenizer = copy.copy(tokenizer) if is_loaded else AutoTokenizer.from_pretrained(str(tokenizer))
        self.tokenizer.padding_side, self.tokenizer.truncation_side = "left", "left"
        self.decoder = OrtDecoder(graph_dir, threads)
        self.context, self.device = self.decoder.context, "cpu"

    def _batch(self, texts: list[str], max_new_tokens: int, temperature: float, top_p: float) -> list[str]:
        limit = max(1, self.context - max_new_tokens)
        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"][-limit:] for t in texts]
        sampling = {}
        if temperature > 0:  # seeded from torch's seed, which `generate` sets from the request's seed
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
            sampling["random_seed"] = torch.initial_seed() % 2**31
        # Rows of equal token length decode together (`OrtDecoder.timed_generate` says why): left-padded batches
        # changed 10 of 64 demo answers at batch 32.
        new: list[list[int]] = [[] for _ in rows]
        for length in sorted({len(r) for r in rows}):
            idx = [i for i, r in enumerate(rows) if len(r) == length]
            for i, out in zip(
                idx, self.decoder.generate([rows[i] for i in idx], max_new_tokens, **sampling), strict=True
            ):
                new[i] = out
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
