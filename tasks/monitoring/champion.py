"""The champion and its data: the registered version behind an alias, its weights, and its prepared splits.

Its lineage tags lead to the prepared data and the checkpoint, so there is no reference path to type.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from tasks.errors import PipelineInputError
from tasks.registry_names import LINEAGE_CHECKPOINT_URI, LINEAGE_DATA_FINGERPRINT, LINEAGE_DATA_URI, read_tag
from tasks.storage import materialize
from tasks.tracking import Tracking
from tasks.workspace import exists, join


class Champion(BaseModel):
    """The registered version being monitored and where its lineage points."""

    name: str
    alias: str
    version: str
    run_id: str
    data_uri: str
    checkpoint_uri: str
    model_dir: str
    data_fingerprint: str
    labels: list[str]


def local_model_dir(tracking: Tracking, name: str, version: str, checkpoint: str | None) -> Path:
    """The checkpoint the version was made from; if it was cleaned up, the weights inside the registered artifact."""
    if checkpoint and exists(join(checkpoint, "config.json")):
        return materialize(checkpoint)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", tracking_uri=tracking.uri, registry_uri=tracking.uri
    )
    return Path(local, "artifacts", "model")


def find_champion(tracking: Tracking, name: str, alias: str = "champion") -> Champion:
    """The version behind `name@alias`, with its lineage checked: errors say what is missing."""
    client = tracking.client()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        raise PipelineInputError(f"registered model '{name}' does not exist in {tracking.uri}")
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise PipelineInputError(f"model '{name}' has no version with alias '{alias}' in {tracking.uri}") from None
    tags = mv.tags
    data_uri = read_tag(tags, LINEAGE_DATA_URI)
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"{name} v{mv.version}: tag {LINEAGE_DATA_URI}={data_uri!r} does not point at prepared data; "
            "the reference data is gone, so there is nothing to compare with"
        )
    checkpoint = read_tag(tags, LINEAGE_CHECKPOINT_URI, "")
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    return Champion(
        name=name,
        alias=alias,
        version=str(mv.version),
        run_id=mv.run_id or "",
        data_uri=data_uri,
        checkpoint_uri=checkpoint,
        model_dir=str(local_model_dir(tracking, name, str(mv.version), checkpoint)),
        data_fingerprint=read_tag(tags, LINEAGE_DATA_FINGERPRINT, ""),
        labels=splits["train"].features["label"].names,
    )


def load_reference(data_uri: str) -> dict[str, pd.DataFrame]:
    """The champion's prepared splits as frames with `text` and `true_label` (label names)."""
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    frames = {}
    for name, split in splits.items():
        names = split.features["label"].names
        df = split.to_pandas()
        frames[name] = pd.DataFrame({"text": df["text"], "true_label": [names[i] for i in df["label"]]})
    return frames
