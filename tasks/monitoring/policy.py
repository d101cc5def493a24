"""The drift policy: when a window counts as drifted, and the one signal that decides alone (accuracy).

The other signals come from Evidently's drift tests (`signals.py`); this module only counts them and
compares the champion's accuracy on labeled rows with its accuracy on held-out reference rows.
"""

from __future__ import annotations

import math

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.monitoring.results import DriftReport, Signal, Status


class DriftPolicy(BaseModel):
    """When a window counts as drifted: enough signals fired, or the champion got clearly worse on it."""

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(200, ge=1, description="Smaller windows are reported as insufficient_data.")
    drift_share: float = Field(0.3, gt=0, le=1, description="Drift when at least this share of the signals fire.")
    max_accuracy_drop: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Drift when accuracy on labeled rows falls by more than this (generators: chrF on rows with a "
        "reference answer, as a share of its 0-100 range).",
    )
    min_labeled_rows: int = Field(50, ge=1, description="Label signals need at least this many labeled rows.")


def drop_threshold(configured: float, accuracy: float, n_ref: int, n_cur: int) -> float:
    """`configured`, raised to the drop that chance alone exceeds 1% of the time at these sizes.

    Stricter than the 5% of the other signals because a drop alone decides, without a second signal.
    """
    p = min(max(accuracy, 0.01), 0.99)
    return max(configured, 2.326 * math.sqrt(p * (1 - p) * (1 / n_ref + 1 / n_cur)))


class Accuracy(BaseModel):
    """The accuracy signal, or why it was not computed."""

    signal: Signal | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    skipped: str | None = None


def accuracy_signal(policy: DriftPolicy, ref_out: pd.DataFrame, cur_out: pd.DataFrame, labeled: int) -> Accuracy:
    """Accuracy on the window's labeled rows against the same model on its held-out reference rows.

    Both frames have `predicted_label` and `true_label` (None where unknown); `labeled` counts the labeled
    rows of the whole window, so that a sample without enough of them says so.
    """
    has_truth = cur_out["true_label"].notna()
    n = int(has_truth.sum())
    if n < policy.min_labeled_rows:
        if not labeled:
            return Accuracy()
        return Accuracy(
            skipped=f"accuracy: {n} labeled rows in the model sample, fewer than "
            f"policy.min_labeled_rows={policy.min_labeled_rows}"
        )
    accuracy = float((cur_out.loc[has_truth, "predicted_label"] == cur_out.loc[has_truth, "true_label"]).mean())
    reference = float((ref_out["predicted_label"] == ref_out["true_label"]).mean())
    drop = reference - accuracy
    threshold = drop_threshold(policy.max_accuracy_drop, reference, len(ref_out), n)
    signal = Signal(
        name="accuracy",
        group="performance",
        method="accuracy drop vs held-out reference",
        score=drop,
        threshold=threshold,
        fired=drop > threshold,
        detail=f"accuracy {accuracy:.4f} on {n} labeled rows vs {reference:.4f} on {len(ref_out)} held-out "
        "reference rows",
    )
    return Accuracy(signal=signal, accuracy=accuracy, reference_accuracy=reference)


def too_small(policy: DriftPolicy, window_rows: int, labeled_rows: int) -> DriftReport | None:
    """The verdict on a window too small to judge, for both tracks; None when it is large enough."""
    if window_rows >= policy.min_rows:
        return None
    return DriftReport(
        status="insufficient_data",
        reasons=[f"the window has {window_rows} rows; policy.min_rows={policy.min_rows} are needed to judge"],
        window_rows=window_rows,
        labeled_rows=labeled_rows,
    )


def decide(
    policy: DriftPolicy, signals: list[Signal], accuracy: Accuracy, metric: str = "accuracy"
) -> tuple[Status, list[str], float]:
    """The verdict, the reasons a person reads, and the share of signals that fired (`metric`: what `accuracy`
    holds; a generator's monitor passes chrF)."""
    fired = [s for s in signals if s.fired]
    share = len(fired) / len(signals)
    performance = any(s.group == "performance" for s in fired)
    reasons = [
        f"{len(fired)} of {len(signals)} signals fired ({share:.0%}; policy.drift_share={policy.drift_share:.0%})"
        + (f": {', '.join(s.name for s in fired)}" if fired else "")
    ]
    if performance:
        reasons.append(f"{metric} fell from {accuracy.reference_accuracy:.4f} to {accuracy.accuracy:.4f}")
    drift = share >= policy.drift_share or performance
    return ("drift" if drift else "no_drift"), reasons, share


def auc_threshold(configured: float, n_ref: int, n_cur: int) -> float:
    """A random classifier's 95th-percentile ROC AUC on the held-out half, if that is above `configured`.

    Same idea as Evidently's bootstrap for small data, in closed form, so the threshold is known.
    """
    a, b = max(n_ref // 2, 1), max(n_cur // 2, 1)
    return max(configured, 0.5 + 1.645 * math.sqrt((a + b + 1) / (12 * a * b)))
