"""The champion and its data: the registered version behind an alias, its weights, and its prepared splits.

Its lineage tags lead to the prepared data, the checkpoint and the pipeline config it was trained with, so there is
no reference path to type and a retrain can train with the same settings. The weights are found as the gate finds
them (`tasks/registry/versions.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from core.errors import PipelineInputError
from core.registry_names import (
    LINEAGE_CHECKPOINT_URI,
    LINEAGE_CONFIG_URI,
    LINEAGE_DATA_FINGERPRINT,
    LINEAGE_DATA_URI,
    TASK,
    read_tag,
)
from core.tracking import Tracking
from core.workspace import exists, join
from tasks.registry.versions import NOT_FOUND, champion_version, model_dir
from tasks.results.registry import Champion


def find_champion(tracking: Tracking, name: str, alias: str = "champion") -> Champion:
    """The version behind `name@alias`, with its lineage checked: errors say what is missing."""
    client = tracking.client()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        raise PipelineInputError(f"registered model '{name}' does not exist in {tracking.uri}")
    mv = champion_version(client, name, alias)  # a registry outage raises (retried), it is no user error
    if mv is None:
        raise PipelineInputError(f"model '{name}' has no version with alias '{alias}' in {tracking.uri}")
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
        model_dir=str(model_dir(tracking, name, str(mv.version), checkpoint)),
        data_fingerprint=read_tag(tags, LINEAGE_DATA_FINGERPRINT, ""),
        labels=splits["train"].features["label"].names if "label" in splits["train"].features else [],
        task=tags.get(TASK, "classification"),
        config_uri=tags.get(LINEAGE_CONFIG_URI, ""),
    )


def recorded_config(tracking: Tracking, champion: Champion) -> dict | None:
    """The pipeline config (JSON) the champion was trained with; None for a version registered before it was kept."""
    if not champion.config_uri:
        return None
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=champion.config_uri, tracking_uri=tracking.uri)
    except (MlflowException, FileNotFoundError) as e:
        if isinstance(e, MlflowException) and e.error_code not in NOT_FOUND:
            raise  # an outage or a broken store: the task fails (and is retried), it is no user error
        raise PipelineInputError(
            f"{champion.name} v{champion.version}: tag {LINEAGE_CONFIG_URI}={champion.config_uri!r} cannot be read "
            f"({e}); it was deleted: retrain with the given settings instead (settings=given)"
        ) from None
    return json.loads(Path(local).read_text())


def load_reference(data_uri: str) -> dict[str, pd.DataFrame]:
    """The champion's prepared splits as frames with `text` and `true_label` (label names)."""
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    frames = {}
    for name, split in splits.items():
        names = split.features["label"].names
        df = split.to_pandas()
        frames[name] = pd.DataFrame({"text": df["text"], "true_label": [names[i] for i in df["label"]]})
    return frames
