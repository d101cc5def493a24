"""What the Prefect and MLflow screens say after a promoted run, a refused run and a drifted window.

One module, three flow runs on a real Prefect server and a real MLflow registry: a short fine-tune of the packaged
pretrained checkpoint that becomes champion (the from-scratch FAST model only predicts the majority class), the
same pipeline with `gate.min_value=0.99` (its training stages come from the cache, so it costs only evaluate,
register, gate and card) that the gate refuses, and a monitor run on the demo's shifted reviews.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import registry_names as names
from core.tracking import Tracking
from flows.config import PipelineConfig, load_config
from flows.pipeline import PipelineResult, pipeline
from tests.conftest import FAST, ROOT

pytestmark = pytest.mark.slow  # all but the last test share the module's runs (the `runs` fixture needs the server)

PRESET = ROOT / "configs" / "finetune-pretrained.yaml"
# Two epochs on 900 rows need not beat TF-IDF: these tests are about what the screens say.
CHAMPION_RUN = [
    *FAST,
    "finetune.epochs=3",  # with lr 3e-5 (the recipe's), 2 short epochs still predict the majority class
    "finetune.optim.learning_rate=0.0003",
    "optimize.enabled=false",
    "gate.baseline_rule=false",
    "gate.baseline_rule_off_reason=screens test with a short run",
]
LONG_FLOAT = re.compile(r"\d\.\d{5,}")


@dataclass
class Runs:
    config: PipelineConfig
    tracking: Tracking
    champion: PipelineResult
    refused: PipelineResult


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_server) -> Runs:
    root = tmp_path_factory.mktemp("ui") / "ws"
    config = load_config(PRESET, [f"workspace.root={root}", *CHAMPION_RUN])
    first = pipeline(config)
    refused = pipeline(load_config(PRESET, [f"workspace.root={root}", *CHAMPION_RUN, "gate.min_value=0.99"]))
    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    return Runs(config, tracking, first, refused)


def _flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def test_flow_runs_are_named_and_tagged_by_their_outcome(runs):
    first, refused = runs.champion, runs.refused
    assert first.promotion is not None and not refused.verdict.passed, (first.verdict.reasons, refused.verdict)
    won = _flow_run(first.flow_run_id)
    assert won.name == f"pipeline · zero2one-classifier v{first.registered.version} · champion"
    assert "champion" in won.tags and "refused" not in won.tags
    assert won.state.is_completed() and won.state.message.startswith(
        f"zero2one-classifier v{first.registered.version} is the new champion, gate passed: macro-F1 0."
    )

    lost = _flow_run(refused.flow_run_id)
    assert lost.name == f"pipeline · zero2one-classifier v{refused.registered.version} · refused"
    assert "refused" in lost.tags and "champion" not in lost.tags
    assert "gate refused: macro_f1" in lost.state.message and "gate.min_value=0.99" in lost.state.message


def test_parent_mlflow_runs_are_named_by_version_with_headline_metrics(runs):
    client = runs.tracking.client()
    for result, passed in ((runs.champion, 1.0), (runs.refused, 0.0)):
        run = client.get_run(result.mlflow_run_id)
        assert run.info.run_name == f"zero2one-classifier v{result.registered.version}"
        metrics = run.data.metrics
        assert {"test_macro_f1", "test_accuracy", "tfidf_macro_f1", "gate_macro_f1"} <= set(metrics)
        assert metrics["gate_passed"] == passed
        assert metrics["test_macro_f1"] == pytest.approx(result.evaluation.model.macro_f1)
        assert "/runs/flow-run/" in run.data.tags["mlflow.note.content"]


def test_finetune_params_are_what_was_set_and_used_not_the_model_config(runs):
    params = runs.tracking.client().get_run(runs.champion.model.mlflow_run_id).data.params
    assert params["config.epochs"] == "3" and params["learning_rate"] == "0.0003"  # set by --set overrides
    assert {"recipe", "epochs", "learning_rate", "batch_size", "total_steps"} <= set(params)
    assert not {"id2label", "label2id", "architectures", "per_device_train_batch_size"} & set(params)
    assert len(params) < 40, sorted(params)


def test_registry_tags_are_grouped_and_descriptions_say_the_verdict(runs):
    client = runs.tracking.client()
    name, refused = runs.refused.registered.name, runs.refused.registered.version
    groups = ("zero2one.gate.", "zero2one.lineage.", "zero2one.metrics.", "zero2one.promotion.")
    for version in (runs.champion.registered.version, refused):
        tags = {k for k in client.get_model_version(name, version).tags if not k.startswith("mlflow.")}
        loose = {k for k in tags if not k.startswith(groups)} - {names.KIND, names.SERVING_VARIANT}
        assert not loose and len(tags) <= 26, sorted(tags)  # 35 before grouping; +eval rows, served score

    mv = client.get_model_version(name, refused)
    assert mv.tags[names.GATE_VERDICT] == "failed" and "min_macro_f1" in mv.tags[names.GATE_FAILED_RULES]
    assert mv.description.startswith("**Refused by the gate**\n- ")
    assert "\n- min_macro_f1: macro_f1 0." in mv.description
    assert "gate.min_value=0.99" in mv.description and "| challenger v" in mv.description
    assert "/runs/flow-run/" in mv.description and "get-artifact?path=confusion_matrix.png" in mv.description
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(mv.run_id)}

    won = runs.champion.registered.version
    champion = client.get_model_version(name, won).description
    assert champion.startswith("**Champion** since ") and "\n\n**Gate passed**: macro-F1 0." in champion
    model = client.get_registered_model(name)
    assert model.description.startswith(f"**Champion: v{won}** (test macro-F1 0.")
    assert model.tags[names.CHAMPION_TAG].startswith(f"v{won} (test macro-F1 ")
    assert not [k for k in model.tags if k.startswith(names.HISTORY_PREFIX)]  # the history lives on its own run
    from tasks.registry.promotion import history

    assert [(h.version, h.action) for h in history(name, runs.tracking)] == [(won, "promote")]


def test_no_artifact_of_a_flow_run_has_a_float_longer_than_4_decimals(runs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    for result in (runs.champion, runs.refused):
        query = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[result.flow_run_id]))
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=query)
        keys = {a.key for a in artifacts}
        assert {"gate", "evaluate-summary", "model-card", "pipeline-summary"} <= keys, keys
        for artifact in artifacts:
            found = LONG_FLOAT.findall(str(artifact.data))
            assert not found, f"{artifact.key}: {found[:5]}"


def test_a_monitor_run_that_finds_drift_is_named_and_tagged_drift(runs):
    from flows.monitor import monitor
    from tasks.monitoring.windows import WindowSource

    shifted = Path(runs.config.workspace.root, "demo", "reviews_shifted.csv")
    window = WindowSource(uri=str(shifted), text_column="review", label_column="sentiment")
    state = monitor(
        model_name=runs.champion.registered.name, window=window, pipeline_config=runs.config, return_state=True
    )
    result = state.result()
    assert result.report.status == "drift", result.report.reasons
    run = _flow_run(state.state_details.flow_run_id)
    version = runs.champion.registered.version
    assert run.name == f"monitor · zero2one-classifier v{version} · drift" and "drift" in run.tags


# ---------------------------------------------------------------- the names module alone (no server)


def test_names_module_is_light_and_reads_tags_registered_before_the_grouping():
    import subprocess
    import sys

    code = "import sys, core.registry_names; print(sorted({'torch', 'mlflow', 'prefect'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout == "[]\n"
    old = {"zero2one.data_uri": "/ws/data/1", "zero2one.gate.verdict": "failed", "zero2one.gate.champion": "failed"}
    old["zero2one.gate.champion.reason"] = "macro_f1 0.4 vs champion v1 0.8"
    assert names.read_tag(old, names.LINEAGE_DATA_URI) == "/ws/data/1"
    assert names.failed_reasons(old) == ["champion: macro_f1 0.4 vs champion v1 0.8"]
    new = {names.GATE_FAILED_RULES: "evaluation,champion", names.GATE_REASONS: "evaluation: a; b\nchampion: c"}
    assert names.failed_reasons(new) == ["evaluation: a; b", "champion: c"]
    assert names.failed_reasons({names.GATE_FAILED_RULES: "none"}) == []
    assert names.model_resource_id("m") == "zero2one.model.m"
