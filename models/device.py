"""Where training runs: CUDA with mixed precision when present, CPU otherwise.

The same config moves from a laptop to a GPU pool without edits; `auto` decides here, and so does the
torch.distributed backend when a stage trains on more than one process.
"""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def resolve_precision(precision: Precision) -> Literal["fp32", "bf16", "fp16"]:
    """`auto`: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def describe_device(nproc_per_node: int = 1) -> str:
    """For logs: where this process trains, and on how many processes."""
    procs = f", {nproc_per_node} processes ({distributed_backend()})" if nproc_per_node > 1 else ""
    if torch.cuda.is_available():
        return f"cuda x{torch.cuda.device_count()} ({torch.cuda.get_device_name(0)}){procs}"
    return f"cpu ({torch.get_num_threads()} threads){procs}"


def distributed_backend() -> Literal["nccl", "gloo"]:
    """NCCL between GPUs; gloo between CPU processes (a laptop, CI)."""
    return "nccl" if torch.cuda.is_available() else "gloo"
