"""Closing the loop: the champion's splits plus newly labeled window rows, as data the `retrain` flow trains on."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.prediction_log import log_uri
from core.storage import publish_dir
from core.workspace import Workspace
from tasks.data.three_way_split import three_way_split
from tasks.monitoring.champion import load_reference
from tasks.monitoring.windows import WindowSource, load_window
from tasks.results.data import RetrainData
from tasks.results.registry import Champion


def _new_rows(window: pd.DataFrame, reference: dict[str, pd.DataFrame], dropped: dict[str, int]) -> pd.DataFrame:
    """Labeled rows with a text that is not empty, not in the reference and not repeated; the rest is counted."""
    dropped["unlabeled"] = int(window["true_label"].isna().sum())
    new = window.loc[window["true_label"].notna(), ["text", "true_label"]]
    empty = new["text"].str.strip() == ""
    seen = set().union(*(set(f["text"]) for f in reference.values()))
    known = new["text"].isin(seen)
    dropped |= {"empty text": int(empty.sum()), "already in the reference": int((known & ~empty).sum())}
    new = new[~empty & ~known]
    before = len(new)
    new = new.drop_duplicates("text")
    dropped["duplicate texts"] = before - len(new)
    return new


def _split_new(new: pd.DataFrame, validation: float, test: float, seed: int) -> dict[str, pd.DataFrame]:
    """Stratified where every label has a few rows; under 10 rows, too few to hold any out."""
    if len(new) < 10:
        return {"train": new, "validation": new.iloc[:0], "test": new.iloc[:0]}
    counts = new["true_label"].value_counts()
    stratify = "true_label" if len(new) >= 20 and counts.min() >= 3 else None
    return three_way_split(new, validation, test, seed, stratify=stratify)


def write_retrain_data(
    champion: Champion,
    new_data: WindowSource,
    ws: Workspace,
    validation: float = 0.1,
    test: float = 0.15,
    seed: int = 42,
) -> RetrainData:
    """Reference splits stay in their splits; labeled window rows are split (stratified) and added to them.

    Old test rows stay test rows and new ones are held out too, so the gate compares old and new model on
    data neither trained on. Rows without a label, with an empty text, or already in the reference are
    dropped and counted; a label the champion does not know is an error.
    """
    window = load_window(new_data, ws)
    reference = load_reference(champion.data_uri)
    dropped: dict[str, int] = {}
    new = _new_rows(window, reference, dropped)
    where = new_data.uri or log_uri(ws)
    if new.empty:
        raise PipelineInputError(
            f"window {where} has no new labeled rows to retrain on (dropped: {dropped}); "
            f"label some rows ({new_data.label_column or 'true_label'} column) first"
        )
    unknown = sorted(set(new["true_label"]) - set(champion.labels))
    if unknown:
        raise PipelineInputError(
            f"window {where}: label(s) {unknown} are not among the champion's labels "
            f"{champion.labels}; fix them, or train a new model with those labels"
        )
    parts = _split_new(new, validation, test, seed)
    frames = {
        split: pd.concat([reference[split], parts[split]], ignore_index=True).rename(columns={"true_label": "label"})
        for split in ("train", "validation", "test")
    }
    key = hash_json(champion.data_fingerprint, *(f.values.tolist() for f in frames.values()))
    with tempfile.TemporaryDirectory() as tmp:
        for split, df in frames.items():
            df[["text", "label"]].to_csv(Path(tmp, f"{split}.csv"), index=False)
        uri = publish_dir(Path(tmp), ws.uri("retrain", key))
    return RetrainData(uri=uri, added={k: len(v) for k, v in parts.items()}, dropped=dropped, labels=champion.labels)
