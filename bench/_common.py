"""Shared set-up for the benchmarks: the embedded environment in a throwaway folder, and sides run in rounds."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
WNUT_TEST = ROOT.parent / "shared" / "data" / "ner" / "wnut17" / "test.conll"
SCRATCH = Path(tempfile.mkdtemp(prefix="zero2one-bench-"))
os.environ.setdefault("PREFECT_HOME", str(SCRATCH / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # see cli/environment.py
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
T = TypeVar("T")


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternating_rounds(sides: dict[str, Callable[[], T]], rounds: int) -> list[dict[str, T]]:
    """Run every side once per round, the order rotated by one each round; returns one {side: result} per round.

    Why: on a shared machine the load drifts and the first run of a batch differs (caches, clocks); a fixed order
    would hand one side the same luck every time. Compare sides by the median of their per-round ratios
    (`round_ratios`): a load change hits one round's sides alike, and the median round drops it.
    """
    names = list(sides)
    results = []
    for r in range(rounds):
        k = r % len(names)
        results.append({name: sides[name]() for name in names[k:] + names[:k]})
    return results


def round_ratios(results: list[dict], num: str, den: str, value: Callable[[Any], float] = float) -> list[float]:
    """`value(num) / value(den)` in each round: the ratios whose median a benchmark reports."""
    return [value(r[num]) / value(r[den]) for r in results]


def ratio_text(ratios: list[float], digits: int = 2) -> str:
    """`3.41x (3.38, 3.52, 3.40)`: the median of per-round ratios, then each round's."""
    return f"{median(ratios):.{digits}f}x ({', '.join(f'{v:.{digits}f}' for v in ratios)})"


def load_text() -> str:
    """The machine's 1/5/15-minute load averages and cores: every printed timing says how busy the machine was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def newest(workspace: Path, pattern: str) -> Path:
    """The newest path under a finished preset run's workspace matching `pattern` (e.g. `finetune_entities/*/model`)."""
    found = sorted(workspace.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"{workspace}: nothing matches {pattern}: is it the workspace of a finished preset run?")
    return found[-1]
