"""The TF-IDF + logistic regression baseline of a prepared dataset: fitted once, kept in the workspace.

The evaluate stage fits it (C tuned on the validation split, see `models/baseline.py`) and scores
it on the test split; the gate scores the same exported model on its frozen set, and registers it
as a candidate version where it beats the challenger. Keyed by the data's fingerprint, so a retry
or a second run on the same data reuses it.

`BaselineModel` is in `tasks/results.py`, `load_baseline` in `tasks/data/loaders.py`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import datasets

from core import reporting
from core.storage import materialize, publish_dir
from core.workspace import Workspace, exists, join
from models import baseline
from models.baseline_onnx import META_FILE
from tasks.results.classification import BaselineModel


def train_baseline(splits: datasets.DatasetDict, labels: list[str], fingerprint: str, ws: Workspace) -> BaselineModel:
    """Fit on train, choose C on validation, export; reuse the export of an earlier run on the same data."""
    uri = ws.uri("baselines", fingerprint)
    if exists(join(uri, META_FILE)):
        meta = json.loads(Path(materialize(uri), META_FILE).read_text())
        return BaselineModel(uri=uri, c=meta["C"], validation_macro_f1=meta["validation_macro_f1"])
    train, val = splits["train"], splits["validation"]
    union, clf, val_f1 = baseline.fit(train["text"], train["label"], val["text"], val["label"])
    info = {"C": float(clf.C), "validation_macro_f1": float(val_f1), "data_fingerprint": fingerprint}
    with tempfile.TemporaryDirectory() as tmp:
        baseline.export(union, clf, labels, Path(tmp), info)
        publish_dir(Path(tmp), uri)
    reporting.logger().info(
        "TF-IDF baseline: C=%s chosen on %d validation texts (macro-F1 %.4f)", clf.C, len(val), val_f1
    )
    return BaselineModel(uri=uri, c=float(clf.C), validation_macro_f1=float(val_f1))
