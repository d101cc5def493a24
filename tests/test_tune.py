"""The `tune` stage: three tiny Optuna trials as Prefect tasks and MLflow child runs, the best settings fine-tuned."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
)

from core.errors import PipelineInputError
from flows.config import PipelineConfig, load_config
from flows.pipeline import pipeline, summary_markdown
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.recipes import plan_finetune
from tasks.kinds.classification.tune import SearchSpace
from tasks.results import TuneResult
from tests.conftest import ROOT

# Three trials of one epoch each on the FAST tiny pipeline (shorter pretraining, no ONNX stage: neither is tested
# here); the sampler chooses learning rate, batch size and warmup.
THREE_TINY_TRIALS = [
    "pretrain.max_steps=10",
    "pretrain.save_steps=10",
    "optimize.enabled=false",
    "tune.enabled=true",
    "tune.n_trials=3",
    "tune.search.epochs=[1, 1]",
    "tune.search.batch_size=[16, 32]",
    "tune.search.learning_rate=[1e-4, 2e-3]",
    "tune.retry.delay_seconds=0",
]


def test_tune_is_off_by_default_and_its_ranges_are_checked():
    assert PipelineConfig().tune.enabled is False
    with pytest.raises(PipelineInputError, match=r"tune\.search.*learning_rate.*low <= high"):
        load_config(ROOT / "configs" / "tiny.yaml", ["tune.search.learning_rate=[1e-3, 1e-5]"])
    with pytest.raises(PipelineInputError, match=r"batch_size \(6\) must be a multiple of nproc_per_node \(4\)"):
        load_config(
            ROOT / "configs" / "tiny.yaml",
            ["tune.enabled=true", "tune.search.batch_size=[8, 6]", "finetune.nproc_per_node=4"],
        )


def test_best_settings_replace_only_what_was_searched():
    cfg = FinetuneConfig(early_stopping_patience=3, optim={"batch_size": 32, "warmup_steps": 20})
    best = TuneResult(
        best_params={"learning_rate": 3e-5, "epochs": 3, "batch_size": 16, "warmup_ratio": 0.1},
        best_value=0.8,
        metric="macro_f1",
        n_trials=3,
        n_complete=3,
        study_name="s",
        storage_uri="sqlite://",
        mlflow_run_id="r",
    )
    tuned = best.apply(cfg)
    o = tuned.optim
    assert (tuned.epochs, o.learning_rate, o.batch_size, o.warmup_ratio, o.warmup_steps) == (3, 3e-5, 16, 0.1, None)
    assert tuned.early_stopping_patience == 3 and o.weight_decay == cfg.optim.weight_decay
    # The recipe turns the ratio into steps: 10% of 3 epochs of ceil(100 / 16) = 7 steps.
    assert plan_finetune(tuned, 100, (64, "test")).optim.warmup_steps == 3


def test_unset_ranges_centre_on_the_recipe():
    space = SearchSpace(batch_size=[8])
    scratch = space.around(FinetuneConfig())
    assert scratch.learning_rate == pytest.approx((5e-4 / 3, 1.5e-3)) and scratch.epochs == (3, 9)
    pretrained = space.around(FinetuneConfig(base_model="some/checkpoint"))
    assert pretrained.learning_rate == pytest.approx((1e-5, 9e-5)) and pretrained.epochs == (2, 4)
    assert SearchSpace(epochs=(1, 1)).around(FinetuneConfig()).epochs == (1, 1)


def _flow_run_id(client: MlflowClient, pipeline_run_id: str) -> str:
    return client.get_run(pipeline_run_id).data.tags["prefect.flow_run_id"]


@pytest.mark.slow  # a whole pipeline run (~1.5 min on 2 idle cores)
@pytest.mark.usefixtures("prefect_server")
def test_three_tiny_trials_feed_the_real_finetune(make_config):
    result = pipeline(make_config(*THREE_TINY_TRIALS))

    tuned = result.tuned
    assert (tuned.n_trials, tuned.n_complete) == (3, 3)
    study = optuna.load_study(study_name=tuned.study_name, storage=tuned.storage_uri)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3 and all(t.intermediate_values for t in trials)
    assert study.best_value == pytest.approx(tuned.best_value)

    # Each trial is an MLflow run under the tune run, which is under the pipeline run.
    client = MlflowClient(result.tracking_uri)
    tune_run = client.get_run(tuned.mlflow_run_id)
    assert tune_run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
    children = client.search_runs([tune_run.info.experiment_id], f"tags.mlflow.parentRunId = '{tuned.mlflow_run_id}'")
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == [f"tune-trial-{i}" for i in range(3)]
    assert {r.data.metrics["best_macro_f1"] for r in children} >= {tuned.best_value}

    # The real fine-tune ran with the best trial's settings (the stage logs the values it used).
    best = tuned.best_params
    ft = client.get_run(result.model.mlflow_run_id).data.params
    assert float(ft["learning_rate"]) == pytest.approx(best["learning_rate"], rel=1e-3)  # params keep 4 digits
    assert (float(ft["epochs"]), int(ft["batch_size"])) == (
        best["epochs"],
        best["batch_size"],
    )
    steps = math.ceil(result.data.sizes["train"] / best["batch_size"]) * best["epochs"]
    assert int(ft["warmup_steps"]) == math.ceil(steps * best["warmup_ratio"])  # as the recipe turns it into steps
    assert "Tuned over 3 of 3 trials" in summary_markdown(result)

    # Trials ran as Prefect tasks of this flow run, and a table artifact lists them.
    flow_run = _flow_run_id(client, result.mlflow_run_id)
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="tune-trial-")),
        )
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tune-trials"])))
    assert sorted(r.name for r in runs) == ["tune-trial-0", "tune-trial-1", "tune-trial-2"]
    assert all(r.state.is_completed() for r in runs)
    tables = [json.loads(a.data) for a in artifacts if str(a.flow_run_id) == flow_run]
    assert [[row["state"] for row in table] for table in tables] == [["COMPLETE"] * 3]
