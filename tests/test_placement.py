"""Stage placement without servers: the config, and a stage's inputs and result through JSON and back."""

from __future__ import annotations

import json

import pytest

from core.errors import PipelineInputError
from core.tracking import Tracking
from core.workspace import Workspace
from flows.config import PipelineConfig, load_config
from flows.placement import dump_arguments, dump_result, load_arguments, load_result, resolve_stage, stage_path
from tasks.results import EncoderArtifact, PreparedData, TokenizerArtifact
from tasks.training.pretrain import pretrain
from tests.conftest import ROOT


def test_nothing_placed_by_default_and_a_typo_is_named():
    assert PipelineConfig().placement.where("pretrain") is None  # the embedded default: every stage in-process
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["placement.stages.pretrain.pool=gpu"])
    assert cfg.placement.where("pretrain").deployment == "stage/gpu" and cfg.placement.where("evaluate") is None
    with pytest.raises(PipelineInputError, match="pretrian"):
        load_config(ROOT / "configs" / "tiny.yaml", ["placement.stages.pretrian.pool=gpu"])


def test_inputs_and_result_survive_the_trip_to_another_worker(tmp_path):
    cfg = load_config(ROOT / "configs" / "tiny.yaml").pretrain
    ws = Workspace(root="s3://bucket/ws")
    tracking = Tracking(uri="http://mlflow:5000", experiment="e", artifact_location=None, ui_url="http://x")
    data = PreparedData.model_validate(_example(PreparedData))
    tokenizer = TokenizerArtifact.model_validate(_example(TokenizerArtifact))
    sent = dump_arguments(pretrain, (cfg, data, tokenizer, tracking, ws), {"parent_run_id": "abc"})
    back = load_arguments(pretrain, json.loads(json.dumps(sent)))  # what the deployment's parameters carry
    assert back == dict(cfg=cfg, data=data, tokenizer=tokenizer, tracking=tracking, ws=ws, parent_run_id="abc")
    assert resolve_stage(stage_path(pretrain)) is pretrain
    encoder = EncoderArtifact.model_validate(_example(EncoderArtifact))
    assert load_result(pretrain, json.loads(json.dumps(dump_result(pretrain, encoder)))) == encoder
    with pytest.raises(PipelineInputError, match="not a stage function"):
        resolve_stage("os:system")


def _example(model) -> dict:
    """Minimal JSON for `model`: each required field filled by its type (str, int, float, dict, list)."""
    values = {str: "x", int: 1, float: 0.5, bool: True, dict: {}, list: []}
    out = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            ann = field.annotation
            origin = getattr(ann, "__origin__", None)
            out[name] = values.get(ann, values.get(origin, "x"))
    return out
