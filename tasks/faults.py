"""Fault injection for testing retries, through the environment rather than monkeypatching.

`ZERO2ONE_FAULTS="evaluate,pretrain@step=20"` makes each named stage fail once per flow run:
`stage` fails when the stage starts, `stage@step=N` fails right after the training checkpoint
at step N is written. A marker file in the workspace records that a fault fired, so the
retry (a new attempt, possibly on another worker) goes through.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import TrainerCallback

ENV_VAR = "ZERO2ONE_FAULTS"


class InjectedFault(RuntimeError):
    """A failure asked for through ZERO2ONE_FAULTS."""


def _spec(stage: str) -> dict[str, str] | None:
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, _, args = item.partition("@")
        if name == stage:
            return dict(kv.split("=", 1) for kv in args.split(";") if kv)
    return None


def _marker(markers_dir: Path, stage: str) -> Path:
    from tasks.tracking import flow_run_id

    return markers_dir / f"{stage}-{flow_run_id() or 'local'}.fired"


def _fire(markers_dir: Path, stage: str, why: str) -> None:
    marker = _marker(markers_dir, stage)
    if marker.exists():
        return
    markers_dir.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise InjectedFault(f"injected fault in stage '{stage}' ({why}; set by {ENV_VAR})")


def maybe_fail(stage: str, markers_dir: Path) -> None:
    """Fail once at the start of `stage` if ZERO2ONE_FAULTS names it without a step."""
    spec = _spec(stage)
    if spec is not None and "step" not in spec:
        _fire(markers_dir, stage, "at stage start")


def step_fault_callback(stage: str, markers_dir: Path) -> TrainerCallback | None:
    """A Trainer callback failing once after the checkpoint at `step=N` is saved, if asked for."""
    spec = _spec(stage)
    if not spec or "step" not in spec:
        return None
    step = int(spec["step"])

    class FailAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= step:
                _fire(markers_dir, stage, f"after checkpoint at step {state.global_step}")

    return FailAfterCheckpoint()
