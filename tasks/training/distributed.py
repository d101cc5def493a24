"""Training on more than one process: `torchrun` started from inside the task, the same Trainer code in each.

A stage hands `run()` a training function and its job (a pydantic model). With `nproc_per_node == 1` that is a
plain call. With more, `run()` starts `python -m torch.distributed.run --standalone --nproc_per_node N -m
tasks.training.distributed <spec.json>`: every process calls the same function, the Trainer sees `WORLD_SIZE` and trains
data-parallel (NCCL on GPUs, gloo on CPU), rank 0 writes the function's typed result as JSON and the parent
returns it. So the task's result, caching and retries are the same whichever way it ran.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from core.errors import PipelineInputError

J = TypeVar("J", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def rank() -> int:
    """This process's rank among the training processes (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def in_child() -> bool:
    """True inside a process that `torchrun` started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def mlflow_env(tracking_uri: str, run_id: str) -> dict[str, str]:
    """Make rank 0's Trainer MLflow callback log into the stage's run, which the parent process opened."""
    return {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id}


def _types(fn: Callable) -> tuple[type[BaseModel], type[BaseModel]]:
    hints = typing.get_type_hints(fn)
    ret = hints.pop("return")
    (job,) = hints.values()
    return job, ret


def run(fn: Callable[[J], R], job: J, nproc_per_node: int = 1, env: dict[str, str] | None = None) -> R:
    """`fn(job)` here, or in `nproc_per_node` processes under torchrun; returns rank 0's result either way."""
    if nproc_per_node <= 1 or in_child():
        return fn(job)
    import torch

    from core import reporting
    from models.device import distributed_backend

    if torch.cuda.is_available() and nproc_per_node > torch.cuda.device_count():
        raise PipelineInputError(
            f"nproc_per_node={nproc_per_node} but this machine has {torch.cuda.device_count()} GPU(s); "
            "set nproc_per_node to at most the number of GPUs"
        )
    reporting.logger().info(
        "starting %d training processes with torchrun (%s backend)", nproc_per_node, distributed_backend()
    )
    _, result_type = _types(fn)
    with tempfile.TemporaryDirectory(prefix="zero2one-dist-") as tmp:
        spec = Path(tmp, "spec.json")
        spec.write_text(
            json.dumps({"fn": f"{fn.__module__}:{fn.__qualname__}", "job": job.model_dump(mode="json"), "dir": tmp})
        )
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}"]
        cmd += ["-m", "tasks.training.distributed", str(spec)]
        child_env = {**os.environ, **(env or {})}
        # The children import the same code as this process (and resolve relative paths from the same directory).
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(cmd, env=child_env)
        errors = sorted(Path(tmp).glob("error-*.json"))
        if errors:  # a user error stays a user error (and is not retried)
            raise PipelineInputError(json.loads(errors[0].read_text())["message"])
        result = Path(tmp, "result.json")
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(
                f"distributed training ({nproc_per_node} processes, {fn.__module__}.{fn.__qualname__}) failed "
                f"with exit code {proc.returncode}; the processes' output is above"
            )
        return result_type.model_validate_json(result.read_text())


def _child(spec_path: str) -> None:
    """One training process: rebuild the job, call the function, rank 0 writes the result."""
    spec = json.loads(Path(spec_path).read_text())
    module, _, name = spec["fn"].partition(":")
    fn = getattr(importlib.import_module(module), name)
    job_type, _ = _types(fn)
    try:
        result = fn(job_type.model_validate(spec["job"]))
    except PipelineInputError as e:
        Path(spec["dir"], f"error-{rank()}.json").write_text(json.dumps({"message": str(e)}))
        raise
    if rank() == 0:
        Path(spec["dir"], "result.json").write_text(result.model_dump_json())
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    _child(sys.argv[1])
