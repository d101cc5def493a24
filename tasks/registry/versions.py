"""Registered versions, read back: which version is champion, where its weights are, and a model to run.

The gate, the generation gate and monitoring all load versions through here. A version is loaded from the
checkpoint its lineage tag names while that folder is still there (no download), else from the weights inside
the registered artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from core.registry_names import CHAMPION, KIND, LINEAGE_BASELINE_URI, LINEAGE_CHECKPOINT_URI, read_tag
from core.storage import materialize
from core.tracking import Tracking
from core.workspace import exists, join
from tasks.results.registry import RegisteredModel

if TYPE_CHECKING:
    from models.baseline_onnx import BaselineClassifier
    from models.classifier import TextClassifier
    from models.generator import TextGenerator

# What the registry answers when the model (or an alias) is not there; anything else is an outage or a broken store.
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST"}


def champion_version(client: MlflowClient, name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The version `alias` points at; None only when the model or the alias does not exist.

    Any other registry error (unreachable server, broken store) raises, so the task fails and is
    retried: treating an outage as "no champion" would let a worse model skip the champion rule.
    """
    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code in NOT_FOUND:
            return None
        raise
    version = model.aliases.get(alias)
    return client.get_model_version(name, version) if version is not None else None


def champion_to_beat(client: MlflowClient, registered: RegisteredModel) -> ModelVersion | None:
    """The champion the challenger is compared with; None without one, or on a re-run of the promoted version."""
    champion = champion_version(client, registered.name)
    if champion is not None and str(champion.version) == registered.version:
        return None  # a re-run of an already promoted version: nothing else to compare with
    return champion


def _artifact_dir(tracking: Tracking, name: str, version: str, artifact: str) -> Path:
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", tracking_uri=tracking.uri, registry_uri=tracking.uri
    )
    return Path(local, "artifacts", artifact)


def model_dir(tracking: Tracking, name: str, version: str, checkpoint: str | None, marker: str = "config.json") -> Path:
    """The checkpoint the version was made from; if it was cleaned up, the weights inside the registered artifact."""
    if checkpoint and exists(join(checkpoint, marker)):
        return materialize(checkpoint)
    return _artifact_dir(tracking, name, version, "model")


def load_predictor(
    client: MlflowClient, name: str, version: str, tracking: Tracking
) -> TextClassifier | BaselineClassifier:
    """A version's classifier (fine-tuned or the TF-IDF baseline), from its files or its artifact."""
    from models.baseline_onnx import META_FILE, BaselineClassifier
    from models.classifier import TextClassifier

    tags = client.get_model_version(name, version).tags
    if tags.get(KIND) == "baseline":
        source = read_tag(tags, LINEAGE_BASELINE_URI)
        if source and exists(join(source, META_FILE)):
            return BaselineClassifier(materialize(source))
        return BaselineClassifier(_artifact_dir(tracking, name, version, "baseline"))
    return TextClassifier(model_dir(tracking, name, version, read_tag(tags, LINEAGE_CHECKPOINT_URI)))


def load_generator(client: MlflowClient, name: str, version: str, tracking: Tracking) -> TextGenerator:
    """A version's generator, from its checkpoint folder when it is still there, else from its artifact."""
    from models.generator import TextGenerator

    checkpoint = read_tag(client.get_model_version(name, version).tags, LINEAGE_CHECKPOINT_URI)
    return TextGenerator(model_dir(tracking, name, version, checkpoint))
