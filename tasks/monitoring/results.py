"""What a drift check returns: one `Signal` per drift test and the `DriftReport` on the window (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Status = Literal["drift", "no_drift", "insufficient_data"]


class Signal(BaseModel):
    """One drift test: Evidently's score, the threshold it was held to, and whether it fired."""

    name: str
    group: Literal["inputs", "model", "performance"]
    method: str
    score: float
    threshold: float
    fired: bool
    detail: str = ""


class DriftReport(BaseModel):
    """The verdict on one window, the signals behind it, and where the reports are."""

    status: Status
    reasons: list[str]
    model_name: str = ""
    model_version: str = ""
    window: dict = {}
    window_rows: int
    labeled_rows: int
    signals: list[Signal] = []
    drift_share: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    quality: dict[str, float] = {}  # generators: chrF on the referenced rows and on held-out reference prompts
    samples: dict[str, int] = {}
    skipped: list[str] = []
    report_uri: str | None = None
    reports: list[str] = []
    mlflow_run_id: str | None = None

    @property
    def fired(self) -> list[Signal]:
        return [s for s in self.signals if s.fired]
