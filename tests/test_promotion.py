"""Gate, promotion and rollback on a real MLflow registry, a real Prefect server and real tiny models.

One short pipeline run per module gives data, a tokenizer and an encoder. From its checkpoint
come two real models of known quality: "better" (classifier head fitted by logistic regression
on the encoder's pooled features) and "worse" (head zeroed: always the first label). Each test
uses its own registered model name in the module's registry. The mechanics tests switch the
TF-IDF baseline rule off (their 20-step encoder need not beat it); the baseline tests switch it on.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from cli.app import app
from core.errors import PipelineInputError
from core.fingerprint import code_version
from core.registry_names import PREVIOUS_CHAMPION, PROMOTED_EVENT, failed_reasons
from core.tracking import Tracking
from core.workspace import Workspace
from flows.config import PipelineConfig, load_config
from flows.pipeline import PipelineResult, pipeline
from flows.promote import promote_flow, rollback_flow
from models.baseline_onnx import BaselineClassifier
from tasks.data.loaders import load_splits
from tasks.data.prepare import prepare_data
from tasks.judging.gate import gate
from tasks.kinds.classification.evaluate import evaluate
from tasks.registry.model_card import CARD_PATH, write_model_card
from tasks.registry.promotion import history, promote
from tasks.registry.register import register
from tasks.results import EvalReport, FinetunedModel, Lineage, PreparedData, RegisteredModel
from tasks.stage_configs import GateConfig, QualityBar
from tests.conftest import FAST

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

ROOT = Path(__file__).resolve().parent.parent
# Only the encoder and tokenizer of this run are used: the heads below decide the quality.
SHORT = [*FAST, "pretrain.max_steps=20", "pretrain.save_steps=20", "finetune.epochs=1", "gate.min_value=0.9"]
OFF = {"baseline_rule": False, "baseline_rule_off_reason": "promotion mechanics tests use a 20-step encoder"}


@dataclass
class Lab:
    config: PipelineConfig
    run: PipelineResult
    tracking: Tracking
    ws: Workspace
    better: tuple[FinetunedModel, EvalReport]
    worse: tuple[FinetunedModel, EvalReport]

    def register(self, name: str, which: str, data: PreparedData | None = None, report=None) -> RegisteredModel:
        model, own_report = getattr(self, which)
        cfg = self.config.registry.model_copy(update={"model_name": name})
        lineage = Lineage(config_hash="test", code_version=code_version())
        return register(cfg, data or self.run.data, model, report or own_report, lineage, self.tracking, self.ws)

    def client(self):
        return self.tracking.client()


def _with_head(src: str, dst: Path, data: PreparedData | None) -> str:
    """A copy of the classifier at `src` whose head is fitted on `data` (or zeroed when `data` is None)."""
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src).eval()
    with torch.no_grad():
        if data is None:
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
        else:
            train = load_splits(data)["train"]
            enc = tokenizer(list(train["text"]), padding=True, truncation=True, max_length=64, return_tensors="pt")
            features = model.bert(**enc).pooler_output.numpy()
            fit = LogisticRegression(C=100, max_iter=2000).fit(features, list(train["label"]))
            model.classifier.weight.copy_(torch.tensor(fit.coef_, dtype=torch.float32))
            model.classifier.bias.copy_(torch.tensor(fit.intercept_, dtype=torch.float32))
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return str(dst)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, prefect_server) -> Lab:
    root = tmp_path_factory.mktemp("promotion") / "ws"
    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={root}", *SHORT])
    run = pipeline(config)
    ws = config.workspace.resolved()
    tracking = Tracking.resolve(config.tracking, ws)
    models = {}
    for which, data in (("better", run.data), ("worse", None)):
        uri = _with_head(run.model.uri, Path(ws.root, "heads", which, "model"), data)
        model = run.model.model_copy(update={"uri": uri})
        models[which] = (model, evaluate(config.evaluate, run.data, model, tracking, ws, quality=QualityBar(**OFF)))
    assert models["better"][1].passed and not models["worse"][1].passed
    tracking.activate()  # the tests below also use MLflow's global API (artifacts, pyfunc)
    return Lab(config=config, run=run, tracking=tracking, ws=ws, **models)


@pytest.fixture(scope="module")
def served(lab) -> RegisteredModel:
    """Model `served`: v1 is the better model, gated and promoted to champion."""
    v1 = lab.register("served", "better")
    verdict = gate(GateConfig(**OFF), lab.run.data, v1, lab.better[1], lab.tracking, lab.ws)
    assert verdict.passed and verdict.champion_version is None
    assert promote("served", v1.version, lab.tracking).version == "1"
    return v1


def _copies(lab: Lab, name: str, n: int, of: RegisteredModel) -> list[str]:
    """`n` more versions of one logged model: cheap extra versions for alias mechanics."""
    lab.tracking.activate()
    source = lab.client().get_model_version(of.name, of.version).source
    return [str(mlflow.register_model(source, name).version) for _ in range(n)]


def _aliases(lab: Lab, name: str) -> dict[str, str]:
    return {alias: str(v) for alias, v in lab.client().get_registered_model(name).aliases.items()}


def _events(model: str, *versions: str, timeout: float = 30) -> list:
    """The `zero2one.model.promoted` events for `model` as the Prefect server stored them (waits for `versions`)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    query = EventFilter(
        event=EventNameFilter(name=[PROMOTED_EVENT]), resource=EventResourceFilter(id=[f"zero2one.model.{model}"])
    )
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            events = client.read_events(query, limit=50).events
        if set(versions) <= {e.payload.get("version") for e in events} or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_pipeline_gate_keeps_a_version_that_fails_a_rule_out(lab):
    run = lab.run
    assert not run.verdict.passed and run.promotion is None and run.aliases == ["challenger"]
    client = lab.client()
    assert "champion" not in _aliases(lab, run.registered.name)
    tags = client.get_model_version(run.registered.name, run.registered.version).tags
    assert tags["zero2one.gate.verdict"] == "failed"
    assert "min_macro_f1" in tags["zero2one.gate.failed_rules"].split(",")
    assert "gate.min_value=0.9" in tags["zero2one.gate.reasons"]
    assert client.get_run(run.registered.run_id).data.tags["zero2one.gate.verdict"] == "failed"
    card = mlflow.artifacts.load_text(f"runs:/{run.registered.run_id}/{CARD_PATH}")
    assert run.data.fingerprint in card and "gate.min_value=0.9" in card and "pretraining run" in card


def test_better_model_replaces_the_champion(lab):
    client = lab.client()
    v1 = lab.register("better", "worse")
    promote("better", v1.version, lab.tracking, force=True, reason="bootstrap with a known-weak model")

    # The challenger comes from newer data: the frozen set is both test splits, deduplicated.
    # All the demo rows: the champion saw a 900-row sample, so a 700-row one held no row new to it (found by the
    # gate once it left out training rows: its "newest" rows had all been the champion's training rows).
    data2 = prepare_data(lab.config.data.model_copy(update={"max_rows": None}), lab.ws)
    report2 = evaluate(lab.config.evaluate, data2, lab.better[0], lab.tracking, lab.ws, quality=QualityBar(**OFF))
    v2 = lab.register("better", "better", data=data2, report=report2)
    cfg = GateConfig(compare="beat", margin=0.05, **OFF)
    verdict = gate(cfg, data2, v2, report2, lab.tracking, lab.ws)

    both = set(load_splits(lab.run.data)["test"]["text"]) | set(load_splits(data2)["test"]["text"])
    # ... less every text either model trained on: the two runs sampled and split the demo data differently.
    trained = {t for d in (lab.run.data, data2) for s in ("train", "validation") for t in load_splits(d)[s]["text"]}
    assert verdict.eval_size == len(both - trained) and verdict.champion_version == "1"
    assert verdict.eval_sources["excluded_trained_on"] == len(both & trained)
    assert verdict.passed, verdict.reasons
    assert verdict.challenger.macro_f1 >= verdict.champion.macro_f1 + 0.05
    # The rows new since the champion (not in its test split) are compared on their own too.
    newest = {r.name: r for r in verdict.rules}["newest"]
    assert verdict.eval_sources["new_since_champion"] >= 20 and newest.passed and " vs " in newest.value, newest
    tags = client.get_model_version("better", "2").tags
    assert tags["zero2one.gate.verdict"] == "passed" and tags["zero2one.gate.failed_rules"] == "none"
    assert tags["zero2one.gate.champion_version"] == "1" and "zero2one.gate.reasons" not in tags

    write_model_card(lab.config.model_dump(mode="json"), data2, v2, report2, verdict, lab.tracking)
    card = mlflow.artifacts.load_text(f"runs:/{v2.run_id}/{CARD_PATH}")
    assert "parent version (champion at the gate): `v1`" in card and data2.fingerprint in card

    moved = promote("better", "challenger", lab.tracking)
    assert (moved.version, moved.previous_version, moved.seq) == ("2", "1", 2)
    aliases = _aliases(lab, "better")
    assert (aliases["champion"], aliases[PREVIOUS_CHAMPION]) == ("2", "1")
    assert [(h.action, h.version, h.previous_version, h.forced) for h in history("better", lab.tracking)] == [
        ("promote", "1", None, True),
        ("promote", "2", "1", False),
    ]
    # Automations see the move as a Prefect event.
    events = _events("better", "2")
    payloads = [e.payload for e in events if e.payload.get("version") == "2"]
    assert payloads and payloads[0]["previous_version"] == "1" and payloads[0]["action"] == "promote"
    assert moved.event_id in {str(e.id) for e in events}


def test_worse_model_is_not_promoted_and_its_tags_say_why(lab, served):
    client = lab.client()
    v2 = lab.register("served", "worse")
    verdict = gate(GateConfig(**OFF), lab.run.data, v2, lab.worse[1], lab.tracking, lab.ws)
    assert not verdict.passed and verdict.champion_version == "1"
    assert verdict.challenger.macro_f1 < verdict.champion.macro_f1

    version = client.get_model_version("served", v2.version)
    assert version.aliases == ["challenger"]
    assert version.tags["zero2one.gate.verdict"] == "failed"
    assert {"champion", "evaluation"} <= set(version.tags["zero2one.gate.failed_rules"].split(","))
    assert "vs champion v1" in version.tags["zero2one.gate.reasons"]
    assert client.get_run(v2.run_id).data.tags["zero2one.gate.reasons"] == version.tags["zero2one.gate.reasons"]
    assert _aliases(lab, "served")["champion"] == "1"
    with pytest.raises(PipelineInputError, match=r"version 2 has not passed the gate.*champion: .*vs champion v1"):
        promote("served", v2.version, lab.tracking)


def test_a_model_below_the_baseline_is_refused_and_the_baseline_becomes_a_candidate(lab):
    cfg = GateConfig()
    report = evaluate(lab.config.evaluate, lab.run.data, lab.worse[0], lab.tracking, lab.ws, quality=cfg.quality())
    v1 = lab.register("below", "worse", report=report)
    verdict = gate(cfg, lab.run.data, v1, report, lab.tracking, lab.ws)
    rules = {r.name: r for r in verdict.rules}
    assert not verdict.passed and not rules["baseline"].passed
    mine, tfidf = verdict.challenger.macro_f1, verdict.baseline.macro_f1
    assert (
        rules["baseline"].reason == f"macro-F1 {mine:.4f} does not beat the TF-IDF baseline {tfidf:.4f} (+0.000 margin)"
    )
    # The evaluation says the same thing with the same numbers (no champion: the frozen set is the test split).
    evaluation = {r.name: r for r in report.rules}
    assert not report.passed and rules["evaluation"].reason == "; ".join(report.reasons)
    assert (evaluation["baseline"], evaluation["min_macro_f1"]) == (rules["baseline"], rules["min_macro_f1"])
    tags = lab.client().get_model_version("below", v1.version).tags
    assert tags["zero2one.metrics.eval_passed"] == "false"
    assert f"baseline: {rules['baseline'].reason}" in tags["zero2one.gate.reasons"].splitlines()

    # The baseline that won is a registered version with its own verdict: never promoted by the gate,
    # served by the same pyfunc, and promotable in one command.
    assert verdict.baseline_version == "2" and tags["zero2one.gate.baseline_version"] == "2"
    candidate = lab.client().get_model_version("below", "2")
    assert candidate.tags["zero2one.kind"] == "baseline" and candidate.aliases == []
    assert candidate.tags["zero2one.gate.verdict"] == "passed", failed_reasons(candidate.tags)
    texts = list(load_splits(lab.run.data)["test"]["text"][:20])
    served = mlflow.pyfunc.load_model("models:/below/2").predict(pd.DataFrame({"text": texts}))
    assert list(served["label"]) == BaselineClassifier(report.baseline.uri).predict(texts)
    assert promote("below", "2", lab.tracking).version == "2"
    # Judged again against that champion (loaded from the registry): refused, and no second copy registered.
    again = gate(cfg, lab.run.data, v1, report, lab.tracking, lab.ws)
    assert again.champion_version == "2" and not again.passed and again.baseline_version == "2"
    assert len(lab.client().search_model_versions("name='below'")) == 2


def test_switching_the_baseline_rule_off_is_recorded_with_its_reason(lab):
    cfg = GateConfig(baseline_rule=False, baseline_rule_off_reason="the network is kept for its calibration")
    v1 = lab.register("off", "worse")
    verdict = gate(cfg, lab.run.data, v1, lab.worse[1], lab.tracking, lab.ws)
    rule = {r.name: r for r in verdict.rules}["baseline"]
    assert rule.passed and rule.value == "off" and verdict.baseline_version is None
    assert rule.reason.startswith("switched off (the network is kept for its calibration): macro-F1 ")
    tags = lab.client().get_model_version("off", v1.version).tags
    assert "baseline" not in tags["zero2one.gate.failed_rules"].split(",")
    assert "calibration" in tags["zero2one.gate.baseline_rule_off"]
    assert not verdict.passed  # the other rules still apply: this model does not beat the majority class


def test_forced_promotion_needs_a_reason(lab, served):
    with pytest.raises(PipelineInputError, match="needs a reason"):
        promote("served", "1", lab.tracking, force=True, reason="  ")
    with pytest.raises(PipelineInputError, match="needs a reason"):
        promote_flow(model="served", version="1", force=True, tracking_uri=lab.tracking.uri)
    out = CliRunner().invoke(app, ["promote", "--model", "served", "--version", "1", "--force"])
    assert out.exit_code == 2 and "--force needs --reason" in out.output
    with pytest.raises(PipelineInputError, match="no version or alias 'nine'"):
        promote("served", "nine", lab.tracking)
    assert _aliases(lab, "served")["champion"] == "1"


def test_rollback_restores_the_previous_champion(lab, served):
    client = lab.client()
    v1, v2 = _copies(lab, "rollback", 2, of=served)
    with pytest.raises(PipelineInputError, match="no 'previous-champion' alias"):
        rollback_flow(model="rollback", tracking_uri=lab.tracking.uri)
    promote("rollback", v1, lab.tracking, force=True, reason="first")
    promote("rollback", v2, lab.tracking, force=True, reason="second")
    assert not promote("rollback", v2, lab.tracking, force=True, reason="again").changed

    out = CliRunner().invoke(
        app, ["rollback", "--model", "rollback", "--reason", "v2 misbehaves", "--workspace", lab.ws.root]
    )
    assert out.exit_code == 0, out.output
    assert "champion v2 -> v1" in out.output
    aliases = _aliases(lab, "rollback")
    assert (aliases["champion"], aliases[PREVIOUS_CHAMPION]) == (v1, v2)
    last = history("rollback", lab.tracking)[-1]
    assert (last.action, last.version, last.previous_version, last.reason) == ("rollback", v1, v2, "v2 misbehaves")
    assert "zero2one.promotion.rolled_back_at" in client.get_model_version("rollback", v2).tags


def test_racing_promotions_end_with_one_champion_and_a_consistent_history(lab, served):
    first, *racers = _copies(lab, "race", 3, of=served)
    promote("race", first, lab.tracking, force=True, reason="start")
    start, results, errors = threading.Barrier(len(racers)), {}, []

    def race(version: str) -> None:
        start.wait()
        try:
            results[version] = promote("race", version, lab.tracking, force=True, reason=f"race {version}")
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    # Each thread runs in a copy of this context, so it talks to the test's Prefect server.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(race, v)) for v in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors and len(results) == len(racers)

    records = history("race", lab.tracking)
    assert [r.seq for r in records] == [1, 2, 3]
    assert {r.version for r in records[1:]} == set(racers)
    for before, after in zip(records, records[1:], strict=False):
        assert after.previous_version == before.version  # each move saw the one before it
    aliases = _aliases(lab, "race")
    assert aliases["champion"] == records[-1].version
    assert aliases[PREVIOUS_CHAMPION] == records[-1].previous_version == records[-2].version
    # The events tell the same story as the history.
    moves = {e.payload["version"]: e.payload["previous_version"] for e in _events("race", *racers)}
    assert all(moves[r.version] == r.previous_version for r in records[1:])


def test_champion_serves_through_pyfunc_and_the_mlflow_cli(lab, served, tmp_path):
    lab.tracking.activate()
    texts = ["the battery is great and the screen is excellent", "it broke after a day, awful"]
    out = mlflow.pyfunc.load_model("models:/served@champion").predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == ["label", "score", "prob_negative", "prob_neutral", "prob_positive"]
    assert out[["prob_negative", "prob_neutral", "prob_positive"]].sum(axis=1).round(5).eq(1).all()

    files = {a.path for a in lab.client().list_artifacts(served.run_id, "model/artifacts/model")}
    assert "model/artifacts/model/model.safetensors" in files
    assert not any(f.endswith((".pkl", ".pickle", ".bin")) for f in files)

    from tests.test_serving import mlflow_models_predict

    payload = {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    predictions = mlflow_models_predict(lab.tracking.uri, "models:/served@champion", payload, tmp_path)
    assert [p["label"] for p in predictions] == list(out["label"])
    assert all(abs(p["prob_positive"] - q) < 1e-5 for p, q in zip(predictions, out["prob_positive"], strict=True))
