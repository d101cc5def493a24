"""A workspace's life across processes: runs that start together, runs that are killed, runs that resume.

Each test starts real processes (the way two `zero2one run` or a `kill -9` happen) on a fresh workspace.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each process imports everything first, says it is ready, then waits for "go": the first connects really overlap.
_INIT_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tasks.tracking import Tracking, TrackingConfig
    from tasks.workspace import Workspace

    root, me = Path(sys.argv[1]), sys.argv[2]
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(root)).resolved())
    (root / f"ready-{me}").touch()
    while not (root / "go").exists():
        time.sleep(0.001)
    tracking.activate()
    tracking.client().search_registered_models()
    """
)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_processes_creating_a_new_tracking_store_together_all_succeed(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _INIT_STORE, str(ws), str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]
    try:
        _wait_for(lambda: all((ws / f"ready-{i}").exists() for i in range(n)), 300, "the processes to import MLflow")
        (ws / "go").touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    failed = [out[-1500:] for p, out in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert not failed, f"{len(failed)} of {n} processes failed:\n" + "\n---\n".join(failed)

    from mlflow import MlflowClient

    assert len(MlflowClient(f"sqlite:///{ws / 'mlflow.db'}").search_experiments(filter_string="name='zero2one'")) == 1
