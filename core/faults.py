"""Fault injection inside training: `ZERO2ONE_FAULTS="pretrain@step=20"` fails a training stage once per flow run
right after the checkpoint at step 20 is written, so the resume tests can check that the retry continues from it.

Faults at a stage's start (`ZERO2ONE_FAULTS="evaluate"`), the variable's parsing and the once-per-run markers live
in the one wrapper of stages, `core/orchestration.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.orchestration import fault_spec, fire_fault

if TYPE_CHECKING:
    from transformers import TrainerCallback


def step_fault_callback(stage: str, markers_dir: Path) -> TrainerCallback | None:
    """A Trainer callback failing once after the checkpoint at `step=N` is saved, if asked for."""
    spec = fault_spec(stage)
    if not spec or "step" not in spec:
        return None
    step = int(spec["step"])
    from transformers import TrainerCallback  # only when a step fault is asked for: the module stays light

    class FailAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= step:
                fire_fault(markers_dir, stage, f"after checkpoint at step {state.global_step}")

    return FailAfterCheckpoint()
