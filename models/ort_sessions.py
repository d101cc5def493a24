"""ONNX Runtime sessions and ONNX Runtime GenAI's config, opened the same way by every ORT predictor here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort


def ort_session(
    path: str | Path,
    threads: int | None = None,
    spin: bool = False,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> ort.InferenceSession:
    """A session on `providers` (CPU by default); `threads` None or 0: one per physical core.

    ORT's idle threads busy-wait for work by default. With the CPU shared (the service's own event loop, torch's
    sampling, other processes) that wait steals the cores: classifier batches of 16 ran at 1,100-1,400 texts/s
    spinning vs 3,700-4,300 not, and the generation engine's sampling beside a spinning session 3x slower.
    """
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=list(providers))


def eos_ids(value: int | list[int] | None) -> set[int]:
    """An end-of-sequence id as configs give it (one, a list, or none) as a set."""
    return set(value if isinstance(value, list) else [value]) - {None}


def genai_model_config(graph_dir: str | Path) -> dict:
    """The `model` section of the builder's `genai_config.json` (context length, eos, decoder shape)."""
    return json.loads((Path(graph_dir) / "genai_config.json").read_text())["model"]
