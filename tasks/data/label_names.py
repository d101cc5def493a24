"""Label names are data: any Unicode, punctuation, spaces. Where a label becomes a name, it is mapped, never refused.

MLflow refuses metric names outside letters, digits, `_ - . space / :` (issue 23: BANKING77's
`test_precision_reverted_card_payment?` crashed evaluate after minutes of training). `metric_names` maps every
label to a name MLflow stores as-is, keeping distinct labels distinct; the data stage logs the mapping before any
compute and evaluate stores it with the run (`evaluation/label_metric_names.json`).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^\w.\- ]")  # \w is Unicode-aware (as in MLflow's own check); '/' and ':' are left out:
# '/' makes a path of the name in file stores, ':' is refused on Windows


def metric_name(label: str) -> str:
    """`label` with every character MLflow cannot store replaced by '_' (the rest kept, Unicode letters too)."""
    return _UNSAFE.sub("_", label.strip()) or "_"


def metric_names(labels: list[str]) -> dict[str, str]:
    """label -> a distinct metric-name-safe name, in the labels' order: a clash gets '_2', '_3', ..."""
    names: dict[str, str] = {}
    taken = {label for label in labels if metric_name(label) == label}  # unchanged labels keep their name
    for label in labels:
        name = metric_name(label)
        if name != label:
            base, n = name, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
        names[label] = name
    return names


def renamed(labels: list[str]) -> dict[str, str]:
    """Only the labels whose metric name differs from the label (what a log line should show)."""
    return {label: name for label, name in metric_names(labels).items() if name != label}
