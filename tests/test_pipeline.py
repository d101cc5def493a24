"""The whole `pipeline` flow on a real Prefect server, a real MLflow registry and a tiny real model."""

from __future__ import annotations

import io
import shlex

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from rich.console import Console

from cli.summary import print_outcome, print_summary
from core.errors import PipelineInputError
from core.orchestration import InjectedFault
from core.tracking import Tracking
from flows.pipeline import pipeline
from tasks.data.loaders import load_splits
from tasks.registry.promotion import history
from tests.conftest import QUALITY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

LINEAGE_TAGS = {
    "zero2one.lineage.data_fingerprint",
    "zero2one.lineage.config_hash",
    "zero2one.lineage.code_version",
    "zero2one.lineage.pretrain_run_id",
    "zero2one.lineage.flow_run_id",
    "zero2one.lineage.finetune_run_id",
}


def _client(result) -> MlflowClient:
    mlflow.set_tracking_uri(result.tracking_uri)
    return MlflowClient(result.tracking_uri, registry_uri=result.tracking_uri)


def test_pipeline_end_to_end_registers_a_champion(make_config):
    result = pipeline(make_config(*QUALITY))

    ev = result.evaluation
    assert ev.passed and ev.model.macro_f1 > ev.majority.macro_f1 + 0.2
    assert set(ev.model.per_class) == {"negative", "neutral", "positive"}
    assert result.encoder.global_step == 300 and result.encoder.resumed_from_step == 0

    reg = result.registered
    assert (reg.name, reg.version) == ("zero2one-classifier", "1")
    client = _client(result)
    version = client.get_model_version_by_alias(reg.name, "champion")
    assert str(version.version) == "1"
    assert str(client.get_model_version_by_alias(reg.name, "challenger").version) == "1"
    # No champion to compare with: the gate's absolute rules passed, so the promotion made it champion.
    assert result.verdict.passed and result.verdict.champion_version is None
    assert (result.promotion.version, result.promotion.previous_version) == ("1", None)
    assert version.tags["zero2one.gate.verdict"] == "passed"
    assert "model_card.md" in {a.path for a in client.list_artifacts(reg.run_id)}
    assert set(version.tags) >= LINEAGE_TAGS
    assert version.tags["zero2one.lineage.data_fingerprint"] == result.data.fingerprint
    assert version.tags["zero2one.lineage.pretrain_run_id"] == result.encoder.mlflow_run_id
    assert float(version.tags["zero2one.metrics.test_macro_f1"]) == pytest.approx(ev.model.macro_f1, abs=1e-4)
    eval_run = client.get_run(ev.mlflow_run_id)
    assert eval_run.data.metrics["test_macro_f1"] == pytest.approx(ev.model.macro_f1)
    assert "baseline_tfidf_logreg_macro_f1" in eval_run.data.metrics
    assert "evaluation/confusion_matrix.png" in [a.path for a in client.list_artifacts(ev.mlflow_run_id, "evaluation")]

    # Anyone can load it from the registry: DataFrame of texts in, labels and probabilities out.
    model = mlflow.pyfunc.load_model(f"models:/{reg.name}/{reg.version}")
    out = model.predict(pd.DataFrame({"text": ["the battery is great and the screen is excellent", "it broke"]}))
    assert list(out.columns) == ["label", "score", "prob_negative", "prob_neutral", "prob_positive"]
    assert out[["prob_negative", "prob_neutral", "prob_positive"]].sum(axis=1).round(5).eq(1).all()
    assert set(out["label"]) <= {"negative", "neutral", "positive"}
    # No pickled Python objects in the artifact: code + safetensors + tokenizer files.
    files = {a.path for a in client.list_artifacts(version.run_id, "model")}
    assert not any(f.endswith((".pkl", ".pickle", "python_model.pkl")) for f in files)


def test_bad_input_fails_before_training_and_registers_nothing(make_config, tmp_path, workspace):
    bad = tmp_path / "bad.csv"
    bad.write_text("review,sentiment\ngreat phone,positive\nawful phone,negatve\n" + "ok phone,neutral\n" * 3)
    config = make_config(f"data.source={bad}", "data.corpus=null", "data.labels=[negative, neutral, positive]")
    with pytest.raises(PipelineInputError, match=r"bad\.csv, line 3, column 'sentiment'.*'negatve'"):
        pipeline(config)
    assert not (workspace / "pretrain").exists()
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    assert client.search_registered_models() == []


def test_retry_resumes_pretraining_from_its_checkpoint(make_config, faults):
    faults("pretrain@step=40", "finetune")
    result = pipeline(make_config("pretrain.retry.retries=1", "finetune.retry.retries=1"))
    # The first attempt died right after the checkpoint at step 40; the retry picked it up there.
    assert result.encoder.resumed_from_step == 40
    assert result.encoder.global_step == 60
    assert result.model.resumed_from_step == 0  # finetune failed at its start, before any checkpoint
    assert result.registered.version == "1"


def test_rerun_after_evaluate_failure_reuses_training(make_config, faults, monkeypatch):
    config = make_config("evaluate.retry.retries=0")
    faults("evaluate")
    with pytest.raises(InjectedFault):
        pipeline(config)
    monkeypatch.delenv("ZERO2ONE_FAULTS")
    result = pipeline(config)
    assert {"train_tokenizer", "pretrain", "finetune"} <= set(result.reused_stages)
    assert "evaluate" not in result.reused_stages
    assert result.registered.version == "1"


def test_failure_after_registration_leaves_no_half_registered_version(make_config, faults, workspace):
    faults("register-aliases")
    with pytest.raises(InjectedFault):
        pipeline(make_config("registry.retry.retries=0"))
    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    assert client.search_model_versions("name='zero2one-classifier'") == []


def test_pipeline_runs_on_an_object_store_workspace(tmp_path, monkeypatch):
    """A workspace URL instead of a folder (fsspec's in-memory store standing in for s3://): every stage downloads
    what it reads and uploads what it writes; only training scratch and MLflow live on local disk."""
    import fsspec

    from flows.config import load_config
    from tests.conftest import FAST, ROOT

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root for a database store is ./mlruns
    root = f"memory://zero2one-test-{tmp_path.name}"
    config = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            f"workspace.root={root}",
            f"workspace.scratch={tmp_path / 'scratch'}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            *FAST,
        ],
    )
    fs = fsspec.filesystem("memory")
    try:
        result = pipeline(config)
        for uri in (result.data.uri, result.tokenizer.uri, result.encoder.uri, result.model.uri):
            assert uri.startswith(root + "/"), uri
        assert fs.exists(result.model.uri.removeprefix("memory://") + "/config.json")
        assert fs.exists(result.data.uri.removeprefix("memory://"))
        version = _client(result).get_model_version(result.registered.name, result.registered.version)
        assert version.tags["zero2one.lineage.data_fingerprint"] == result.data.fingerprint
    finally:
        fs.rm(root.removeprefix("memory://"), recursive=True)


# A fine-tuned model that learns nothing (learning rate ~0) loses to TF-IDF every time; the baseline's own verdict
# then passes (no champion, no minimum): the cheapest first run where the better move is the baseline.
LOSES_TO_TFIDF = [
    "data.max_rows=300",
    "pretrain.max_steps=10",
    "pretrain.save_steps=10",
    "finetune.epochs=1",
    "finetune.optim.learning_rate=1e-9",
    "optimize.enabled=false",
]


def _printed(fn, result) -> str:
    out = io.StringIO()
    fn(result, Console(file=out, width=250, color_system=None))
    return out.getvalue()


def test_a_first_run_the_baseline_won_leads_with_shipping_it_and_ships_it_only_when_asked(make_config):
    refused = pipeline(make_config(*LOSES_TO_TFIDF))
    name, verdict = refused.registered.name, refused.verdict
    assert not verdict.passed and verdict.champion_version is None and verdict.baseline_version == "2"
    assert refused.baseline_reasons == [] and refused.promotion is None and refused.outcome == "refused"
    client = _client(refused)
    assert "champion" not in client.get_registered_model(name).aliases  # gate.baseline_as_champion is off by default
    ship = f"zero2one promote --workspace {refused.workspace} --model {name} --version 2"
    panel = _printed(print_outcome, refused)
    assert ship in panel and panel.index(ship) < panel.index(verdict.reasons[0][:60]), panel
    summary = _printed(print_summary, refused)
    assert summary.index(ship) < summary.index("promote anyway"), summary
    test_texts = list(load_splits(refused.data)["test"]["text"])
    assert refused.sample_text in test_texts and "great phone" not in summary
    assert f"--model {name}/1 {shlex.quote(refused.sample_text)}" in summary

    config = make_config(*LOSES_TO_TFIDF, "gate.baseline_as_champion=true")
    shipped = pipeline(config)
    baseline = shipped.verdict.baseline_version
    assert not shipped.verdict.passed and shipped.registered.version == "3" and baseline is not None
    assert shipped.baseline_promoted and shipped.outcome == "baseline-champion" and shipped.aliases == ["challenger"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == baseline
    why = "baseline promoted as first champion: the fine-tuned model v3 was refused because "
    move = history(name, Tracking.resolve(config.tracking, config.workspace.resolved()))[-1]
    assert (move.version, move.forced, move.previous_version) == (baseline, False, None)
    assert move.reason == why + "; ".join(shipped.verdict.reasons)
    assert client.get_model_version(name, baseline).tags["zero2one.promotion.reason"] == f"promote: {move.reason}"
    assert "baseline promoted" in _printed(print_outcome, shipped)
