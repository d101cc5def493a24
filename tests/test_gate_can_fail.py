"""Classifier gate rules that can fail, on real SMS data, a real registry and a real optimize stage (issue 22).

The champion was trained on the first 1,000 rows of a file, the challenger on all 1,600: the two runs split the
data differently, so each test split holds texts the other model trained on. The gate's frozen set must leave every
such text out and say how many it left out. A `newest` rule with too few rows says "not judged", never "pass"; an
unset minimum says "not set"; the version reports the test score of what serves (the ONNX graph) beside PyTorch's.
The models are tiny random BERTs: these rules are about which rows and which numbers, not about quality.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd
import pytest
from transformers import BertConfig, BertForSequenceClassification

from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from tasks.data.loaders import load_tokenizer
from tasks.data.prepare import DataConfig, prepare_data
from tasks.judging.gate import gate
from tasks.judging.quality import min_rule
from tasks.judging.report_rows import rule_rows
from tasks.kinds.classification.evaluate import EvaluateConfig, evaluate
from tasks.optimize import LatencyConfig, OptimizeConfig, optimize
from tasks.registry.model_card import write_model_card
from tasks.registry.register import register
from tasks.results import FinetunedModel, Lineage
from tasks.stage_configs import GateConfig, QualityBar, RegisterConfig
from tasks.training.tokenizer import TokenizerConfig, train_tokenizer

SMS = Path("/work/shared/data/sms_spam.csv")
if not SMS.exists():  # CI keeps the same copy beside the checkout
    SMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms_spam.csv"
OFF = {"baseline_rule": False, "baseline_rule_off_reason": "random tiny models: these tests are about rows"}
NAME = "honest"


def _classifier(folder: Path, tok, labels: list[str]) -> str:
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return str(folder)


def _trained_on(data) -> set[str]:
    splits = datasets.load_from_disk(data.splits_uri)
    return set(splits["train"]["text"]) | set(splits["validation"]["text"])


def _test_texts(data) -> set[str]:
    return set(datasets.load_from_disk(data.splits_uri)["test"]["text"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-honest")
    ws = Workspace(root=str(root / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(experiment="gate-honest"), ws)
    sms = pd.read_csv(SMS, usecols=[0, 1], encoding="latin-1").set_axis(["label", "text"], axis=1).head(1600)
    sms.head(1000).to_csv(root / "first.csv", index=False)
    sms.to_csv(root / "all.csv", index=False)
    read = {"text_column": "text", "label_column": "label", "corpus": None}
    old = prepare_data(DataConfig(source=str(root / "first.csv"), **read), ws)
    new = prepare_data(DataConfig(source=str(root / "all.csv"), **read), ws)
    tok_artifact = train_tokenizer(TokenizerConfig(vocab_size=400), new, ws)
    uri = _classifier(root / "model", load_tokenizer(tok_artifact), new.labels)
    model = FinetunedModel(
        uri=uri, base_model="random", method="full", global_step=0, resumed_from_step=0, mlflow_run_id="none",
        labels=new.labels, best_metric=0.0, metric="macro_f1",
    )  # fmt: skip
    lineage = Lineage(config_hash="test", code_version="test")
    reg = RegisterConfig(model_name=NAME)
    old_report = evaluate(EvaluateConfig(), old, model, tracking, ws, quality=QualityBar(**OFF))
    champion = register(reg, old, model, old_report, lineage, tracking, ws)
    tracking.client().set_registered_model_alias(NAME, "champion", champion.version)
    report = evaluate(EvaluateConfig(), new, model, tracking, ws, quality=QualityBar(**OFF))
    opt_cfg = OptimizeConfig(latency=LatencyConfig(sequence_lengths=[16], batch_sizes=[1], warmup=1, iterations=1))
    optimized = optimize(opt_cfg, new, model, tracking, ws)
    challenger = register(reg, new, model, report, lineage, tracking, ws, optimized=optimized)
    cfg = GateConfig(newest_min_rows=100_000, **OFF)
    verdict = gate(cfg, new, challenger, report, tracking, ws, optimized=optimized)
    return {"old": old, "new": new, "report": report, "verdict": verdict, "challenger": challenger,
            "optimized": optimized, "tracking": tracking}  # fmt: skip


def test_the_frozen_set_leaves_out_every_text_either_model_trained_on(lab) -> None:
    old, new, verdict = lab["old"], lab["new"], lab["verdict"]
    trained = _trained_on(old) | _trained_on(new)
    pool = _test_texts(old) | _test_texts(new)
    leaked = pool & trained
    assert len(leaked) > 50  # the re-split put many test texts of one run into the other's training data
    frozen = pd.read_parquet(Path(verdict.eval_uri.removeprefix("file://"), "eval.parquet"))
    assert not set(frozen["text"]) & trained
    assert set(frozen["text"]) == pool - trained and verdict.eval_size == len(pool - trained)
    assert verdict.eval_sources["excluded_trained_on"] == len(leaked)
    newest = set(frozen.loc[frozen["newest"], "text"])
    assert verdict.eval_sources["new_since_champion"] == len(newest) and not newest & _trained_on(old)
    tags = lab["tracking"].client().get_model_version(NAME, lab["challenger"].version).tags
    assert f"{len(leaked)} test texts" in tags["zero2one.gate.eval_rows"], tags


def test_newest_rule_with_too_few_rows_says_not_judged_everywhere(lab) -> None:
    verdict = lab["verdict"]
    newest = {r.name: r for r in verdict.rules}["newest"]
    rows = verdict.eval_sources["new_since_champion"]
    assert newest.state == "not judged" and f"{rows} new rows < gate.newest_min_rows=100000" in newest.reason
    row = {r["rule"]: r for r in rule_rows(verdict.rules)}["newest"]
    assert row["result"] == "not judged"
    tags = lab["tracking"].client().get_model_version(NAME, lab["challenger"].version).tags
    assert f"newest: not judged: {rows} new rows < gate.newest_min_rows=100000" in tags["zero2one.gate.not_judged"]
    passing = verdict.model_copy(update={"passed": True, "rules": [r for r in verdict.rules if r.passed]})
    assert f"(newest not judged: {rows} new rows < 100000)" in passing.headline  # the flow's message, the UI's note


def test_an_unset_minimum_is_shown_as_not_set_in_the_gate_and_the_evaluation(lab) -> None:
    verdict, report = lab["verdict"], lab["report"]
    gate_min = {r.name: r for r in verdict.rules}["min_macro_f1"]
    assert gate_min.state == "not set" and "gate.min_value" in gate_min.reason
    assert {r["rule"]: r["result"] for r in rule_rows(verdict.rules)}["min_macro_f1"] == "not set"
    eval_min = {r.name: r for r in report.rules}["min_test_macro_f1"]
    assert eval_min.state == "not set" and "evaluate.min_macro_f1" in eval_min.reason
    # Set, the same rule judges and can fail.
    judged = min_rule(QualityBar(min_value=0.99, **OFF), 0.5)
    assert judged.state == "judged" and not judged.passed


def test_the_version_reports_the_served_graphs_test_score_beside_pytorchs(lab) -> None:
    optimized, challenger, tracking = lab["optimized"], lab["challenger"], lab["tracking"]
    assert optimized.passed and optimized.variant in ("int8", "fp32"), optimized.reasons  # a graph serves
    expected = optimized.parity[optimized.variant].macro_f1  # the parity run's number: no re-scoring
    tags = tracking.client().get_model_version(NAME, challenger.version).tags
    assert tags["zero2one.metrics.served_test_macro_f1"] == f"{expected:.4f}"
    assert tags["zero2one.metrics.served_runtime"] == f"onnx-{optimized.variant}"
    parity = {r.name: r for r in lab["verdict"].rules}["parity"]
    assert parity.passed and parity.value == f"onnx-{optimized.variant}" and optimized.verdict in parity.reason
    write_model_card({}, lab["new"], challenger, lab["report"], lab["verdict"], tracking)
    description = tracking.client().get_model_version(NAME, challenger.version).description
    assert f"served ({tags['zero2one.metrics.served_runtime']})" in description
    assert f"{expected:.4f}" in description and f"{lab['report'].model.macro_f1:.4f}" in description
