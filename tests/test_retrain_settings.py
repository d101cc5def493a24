"""A retrain trains with the settings the champion was trained with, not the defaults (issue 17, monitor and retrain).

Every registered version records the pipeline config it ran with (a JSON artifact of its register run, named by the
version tag `zero2one.lineage.config_uri`); the `retrain` flow starts from it, with the caller's workspace and
tracking. Before this, a drift-triggered retrain (whose trigger passes only the workspace) trained with
`PipelineConfig()`'s defaults: here 6 epochs at the recipe's learning rate instead of the champion's 1 epoch at 7e-4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.registry_names import LINEAGE_CONFIG_HASH, LINEAGE_CONFIG_URI
from core.tracking import Tracking
from core.workspace import Workspace
from flows.config import PipelineConfig, load_config
from tasks.results import Champion, RetrainData
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent
# Not what PipelineConfig() would use (the from-scratch recipe: 6 epochs, learning rate 5e-4).
CHAMPION_SETTINGS = ["finetune.epochs=1", "finetune.optim.learning_rate=0.0007"]


@dataclass
class Setup:
    root: Path
    tracking: Tracking
    name: str
    version: str


def _recorded(tracking: Tracking, tags: dict[str, str]) -> dict:
    local = mlflow.artifacts.download_artifacts(artifact_uri=tags[LINEAGE_CONFIG_URI], tracking_uri=tracking.uri)
    return json.loads(Path(local).read_text())


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prefect_server) -> Setup:
    """A champion trained with the tests' FAST settings and a non-default fine-tuning."""
    from flows.pipeline import pipeline

    root = tmp_path_factory.mktemp("retrain-settings") / "ws"
    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={root}", *FAST, *CHAMPION_SETTINGS])
    run = pipeline(config)
    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    client = tracking.client()
    if "champion" not in client.get_registered_model(run.registered.name).aliases:
        # The FAST model is too small to pass the gate; retraining needs a champion, not a good one.
        client.set_registered_model_alias(run.registered.name, "champion", run.registered.version)
    return Setup(root, tracking, run.registered.name, run.registered.version)


def _labeled_window(setup: Setup, folder: Path) -> str:
    """40 labeled shifted reviews the champion never saw, as a file a person would label."""
    shifted = pd.read_csv(setup.root / "demo" / "reviews_shifted.csv").head(40)
    path = folder / "labeled.csv"
    shifted.rename(columns={"review": "text", "sentiment": "true_label"}).to_csv(path, index=False)
    return str(path)


def test_version_records_its_config_and_a_retrain_with_default_config_reuses_the_champions(setup, tmp_path):
    from flows.retrain import retrain
    from tasks.monitoring.windows import WindowSource

    client = setup.tracking.client()
    tags = client.get_model_version(setup.name, setup.version).tags
    champion_config = _recorded(setup.tracking, tags)
    assert hash_json(champion_config) == tags[LINEAGE_CONFIG_HASH]  # the config the hash was taken of
    assert champion_config["finetune"]["epochs"] == 1 and champion_config["data"]["max_rows"] == 900

    # What the drift trigger passes: everything default but the workspace.
    given = PipelineConfig(workspace=Workspace(root=str(setup.root)))
    result = retrain(model_name=setup.name, new_data=WindowSource(uri=_labeled_window(setup, tmp_path)),
                     pipeline_config=given)  # fmt: skip

    params = client.get_run(result.pipeline.model.mlflow_run_id).data.params
    assert (float(params["epochs"]), float(params["learning_rate"])) == (1.0, 0.0007), params
    assert result.settings == f"{setup.name} v{setup.version} ({tags[LINEAGE_CONFIG_URI]})"
    recorded = _recorded(setup.tracking, client.get_model_version(setup.name, result.new_version).tags)
    assert recorded["finetune"]["epochs"] == 1 and recorded["finetune"]["optim"]["learning_rate"] == 0.0007
    assert recorded["pretrain"]["enabled"] is False and recorded["finetune"]["base_model"] is not None
    assert recorded["workspace"]["root"] == str(setup.root.resolve())


def test_cli_retrain_takes_the_settings_option(setup, tmp_path):
    import typer
    from typer.testing import CliRunner

    from cli.monitor import retrain

    app = typer.Typer()  # the way cli/app.py registers it (as its only command: called without its name)
    app.command()(retrain)
    unlabeled = tmp_path / "window.csv"
    unlabeled.write_text("text\ngreat phone\n")
    common = ["--data", str(unlabeled), "--workspace", str(setup.root)]
    bad = CliRunner().invoke(app, ["--settings", "mine", *common])
    assert bad.exit_code == 2 and "Invalid value for '--settings'" in bad.output
    for settings in ("given", "champion"):  # both reach the data check, which stops before any training
        out = CliRunner().invoke(app, ["--settings", settings, *common])
        assert out.exit_code == 2 and "no label column 'true_label'" in out.output, out.output


# ---------------------------------------------------------------- choosing the settings (no training)

CHAMPION = Champion(
    name="m",
    alias="champion",
    version="3",
    run_id="r",
    data_uri="/ws/data/abc",
    checkpoint_uri="/ws/finetune/v3/model",
    model_dir="/ws/finetune/v3/model",
    data_fingerprint="abc",
    labels=["negative", "positive"],
    config_uri="runs:/r/pipeline_config.json",
)
DATA = RetrainData(uri="/ws/retrain/def", added={}, dropped={}, labels=["negative", "positive"])


def test_champion_settings_keep_its_training_and_take_the_callers_workspace_and_tracking(tmp_path, capsys):
    from flows.retrain import champion_settings

    elsewhere = ["workspace.root=/elsewhere", "tracking.uri=sqlite:////elsewhere/mlflow.db"]
    trained = load_config(ROOT / "configs" / "tiny.yaml", [*elsewhere, *CHAMPION_SETTINGS]).model_dump(mode="json")
    given = PipelineConfig(workspace=Workspace(root=str(tmp_path)), finetune={"epochs": 4})
    base = champion_settings(given, CHAMPION, trained)
    assert base.finetune.epochs == 1 and base.finetune.optim.learning_rate == 0.0007
    assert base.data.text_column == "review" and base.pretrain.shape.hidden_size == 128  # tiny.yaml's, not defaults
    assert base.workspace == given.workspace and base.tracking == given.tracking
    assert "with the settings m v3 was trained with (runs:/r/pipeline_config.json)" in capsys.readouterr().out

    # Registered before versions recorded their config: the given settings, and a sentence that says so.
    assert champion_settings(given, CHAMPION.model_copy(update={"config_uri": ""}), None) is given
    assert "m v3 was registered before versions recorded their pipeline config" in capsys.readouterr().out

    # A recorded config this code no longer reads: an error naming the key and the way out.
    old = trained | {"finetune": trained["finetune"] | {"renamed_setting": 1}}
    with pytest.raises(PipelineInputError, match=r"(?s)finetune.renamed_setting: unknown key.*settings=given"):
        champion_settings(given, CHAMPION, old)


def test_retraining_a_retrained_champion_fine_tunes_it_or_pretrains_anew():
    """A retrained champion's recorded config is a retrain's (pretraining off, an older checkpoint as base)."""
    from flows.retrain import retrain_config

    for preset, task, pretrain, tune in (
        ("tiny.yaml", "classification", "pretrain", "finetune"),
        ("tiny-generation.yaml", "generation", "causal_pretrain", "sft"),
    ):
        champion = CHAMPION.model_copy(update={"task": task})  # its model kind says how it retrains
        older = champion.model_copy(update={"checkpoint_uri": "/ws/finetune/v1/model"})
        recorded = retrain_config(load_config(ROOT / "configs" / preset), older, DATA, False)
        again = retrain_config(recorded, champion, DATA, False)
        assert not getattr(again, pretrain).enabled and getattr(again, tune).base_model == CHAMPION.checkpoint_uri
        fresh = retrain_config(recorded, champion, DATA, True)
        assert getattr(fresh, pretrain).enabled and getattr(fresh, tune).base_model is None, preset


# ---------------------------------------------------------------- the same for a generator

# The generation preset at the smallest sizes that run every stage; SFT settings the defaults do not have (3 epochs
# at learning rate 1e-3).
GENERATOR = [
    "generation_data.max_rows=200",
    "causal_pretrain.max_steps=10",
    "causal_pretrain.save_steps=10",
    "causal_pretrain.optim.warmup_steps=2",
    "evaluate_generation.max_prompts=10",
    "evaluate_generation.max_new_tokens=8",
    "optimize_generation.enabled=false",
    "sft.epochs=0.5",
    "sft.optim.learning_rate=0.003",
    "sft.optim.warmup_steps=2",
]


def test_generator_retrain_with_default_config_instruction_tunes_with_the_champions_sft_settings(tmp_path):
    from flows.pipeline import pipeline
    from flows.retrain import retrain
    from tasks.kinds.generation.demo import write_demo_instructions
    from tasks.monitoring.windows import WindowSource

    root = tmp_path / "ws"
    first = pipeline(load_config(ROOT / "configs" / "tiny-generation.yaml", [f"workspace.root={root}", *GENERATOR]))
    tracking = Tracking.resolve(PipelineConfig(workspace=Workspace(root=str(root))).tracking, Workspace(root=str(root)))
    client = tracking.client()
    name = first.registered.name
    client.set_registered_model_alias(name, "champion", first.registered.version)  # good or not: it is retrained
    shifted = write_demo_instructions(tmp_path / "demo", {"train": 1}, n_corpus=1, n_shifted=30, seed=7)
    pairs = pd.read_json(shifted.instructions_shifted, lines=True)
    window = tmp_path / "labeled.csv"
    pairs.rename(columns={"prompt": "text", "response": "true_label"}).to_csv(window, index=False)

    given = PipelineConfig(workspace=Workspace(root=str(root)))  # what the drift trigger passes
    result = retrain(model_name=name, new_data=WindowSource(uri=str(window)), pipeline_config=given)

    params = client.get_run(result.pipeline.model.mlflow_run_id).data.params
    assert (float(params["config.epochs"]), float(params["config.optim.learning_rate"])) == (0.5, 0.003), params
    recorded = _recorded(tracking, client.get_model_version(name, result.new_version).tags)
    assert recorded["task"] == "generation" and recorded["sft"]["epochs"] == 0.5
    assert recorded["sft"]["base_model"] == first.model.uri and recorded["causal_pretrain"]["enabled"] is False
