"""The quick latency table: PyTorch eager and each ONNX graph on the same inputs and thread count."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def synthetic_inputs(input_names: list[str], vocab_size: int, batch: int, length: int) -> dict[str, np.ndarray]:
    """Fixed-shape inputs without padding, so every backend does exactly the same work."""
    rng = np.random.default_rng(0)
    values = {
        "input_ids": rng.integers(5, max(vocab_size, 6), (batch, length), dtype=np.int64),
        "attention_mask": np.ones((batch, length), dtype=np.int64),
        "token_type_ids": np.zeros((batch, length), dtype=np.int64),
    }
    return {name: values[name] for name in input_names}


def torch_runner(model: torch.nn.Module) -> Callable[[dict[str, np.ndarray]], Any]:
    """PyTorch eager on the same numpy inputs as ONNX Runtime."""

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]):
        return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits

    return run


def time_ms(fn: Callable[[], Any], warmup: int, iterations: int) -> tuple[float, float]:
    """p50 and p95 wall time of `fn` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def latency_rows(
    runners: dict[str, Callable[[dict[str, np.ndarray]], Any]],
    input_names: list[str],
    vocab_size: int,
    shapes: list[tuple[int, int]],
    warmup: int,
    iterations: int,
    sizes_mb: dict[str, float] | None = None,
) -> list[dict]:
    """One row per backend and (batch, length); backends alternate per shape so they share the machine's mood."""
    rows = []
    for batch, length in shapes:
        feeds = synthetic_inputs(input_names, vocab_size, batch, length)
        for backend, run in runners.items():
            p50, p95 = time_ms(lambda run=run, feeds=feeds: run(feeds), warmup, iterations)
            row = {"backend": backend, "batch": batch, "seq_len": length, "p50_ms": round(p50, 3)}
            row["p95_ms"] = round(p95, 3)
            if sizes_mb is not None:
                row["size_mb"] = sizes_mb.get(backend, float("nan"))
            rows.append(row)
    return rows


def _mb(paths) -> float:
    return round(sum(p.stat().st_size for p in paths) / 2**20, 2)
