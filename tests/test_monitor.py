"""Drift monitoring on a real Prefect server, a real MLflow registry and a tiny real champion.

One champion per module (the tests' FAST pipeline); windows are written to a real prediction log
the way serving writes it. The closed-loop numbers (false alarms over 10 windows, the retrained
model against the old champion) are measured by `bench/closed_loop.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from core.errors import PipelineInputError
from core.prediction_log import append_predictions, log_uri, read_window, rows_from_predictions
from core.tracking import Tracking
from core.workspace import Workspace
from flows.config import PipelineConfig, load_config
from tasks.monitoring.champion import load_reference
from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.windows import WindowSource, load_window
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # the shifted window's hour
T1 = datetime(2026, 3, 3, 8, 0, tzinfo=timezone.utc)  # the reference-like window's hour


# ---------------------------------------------------------------- the prediction log alone (no server)


def _rows(n: int, start: datetime, **extra) -> list[dict]:
    return [
        {
            "timestamp": start + timedelta(minutes=i),
            "text": f"review number {i}",
            "label": "positive",
            "score": 0.9,
            "probs": {"positive": 0.9, "negative": 0.1},
            "model_name": "m",
            "model_version": "1",
            **extra,
        }
        for i in range(n)
    ]


def test_prediction_log_round_trip_and_windows(tmp_path):
    uri = str(tmp_path / "predictions")
    append_predictions(uri, _rows(3, T0 - timedelta(minutes=1)))
    append_predictions(uri, _rows(2, T1, true_label="negative"))
    everything = read_window(uri)
    assert len(everything) == 5 and list(everything["timestamp"]) == sorted(everything["timestamp"])
    assert str(everything["timestamp"].dt.tz) == "UTC"
    assert everything["probs"].iloc[0] == '{"negative": 0.1, "positive": 0.9}'
    assert everything["true_label"].tolist() == [None, None, None, "negative", "negative"]
    assert len(read_window(uri, since=T1)) == 2
    assert len(read_window(uri, until=T0.isoformat())) == 1
    assert read_window(uri, last_n=2)["timestamp"].min() == pd.Timestamp(T1)
    assert read_window(uri, since="2030-01-01").empty


def test_prediction_log_rejects_bad_rows_and_paths(tmp_path):
    uri = str(tmp_path / "predictions")
    with pytest.raises(PipelineInputError, match=r"lack column\(s\) \['score'\]"):
        append_predictions(uri, [{k: v for k, v in _rows(1, T0)[0].items() if k != "score"}])
    with pytest.raises(PipelineInputError, match="unknown column"):
        append_predictions(uri, _rows(1, T0, confidence=0.3))
    with pytest.raises(PipelineInputError, match="is not a prediction log"):
        read_window(str(tmp_path))
    append_predictions(uri, _rows(1, T0))
    with pytest.raises(PipelineInputError, match="empty time range"):
        read_window(uri, since=T1, until=T0)


def test_window_errors_name_the_problem(tmp_path):
    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    csv = tmp_path / "window.csv"
    csv.write_text("review,sentiment\ngreat phone,positive\n")
    with pytest.raises(PipelineInputError, match=r"no text column 'text' \(columns: \['review', 'sentiment'\]\)"):
        load_window(WindowSource(uri=str(csv)), ws)
    window = load_window(WindowSource(uri=str(csv), text_column="review", label_column="sentiment"), ws)
    assert window[["text", "true_label"]].values.tolist() == [["great phone", "positive"]]
    csv.write_text("review,sentiment\n")
    with pytest.raises(PipelineInputError, match="has no rows"):
        load_window(WindowSource(uri=str(csv), text_column="review"), ws)
    with pytest.raises(PipelineInputError, match="no prediction log at"):
        load_window(WindowSource(), ws)


def _random_classifier(tokenizer, labels: list[str], out: Path):
    """A 1-layer BERT with random weights: the tokenizer signal and the reports do not depend on the weights."""
    from transformers import BertConfig, BertForSequenceClassification

    from models.classifier import TextClassifier

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return TextClassifier(out)


def test_unseen_reference_like_text_does_not_fire_the_tokenizer_signal(tmp_path):
    """A tokenizer keeps every word of its own training text whole; on text it never saw it splits rare words.

    Here the tokenizer learned from the champion's ~75 training reviews (data.corpus=null, as with a user's
    own data), which do not hold the demo's whole vocabulary. Against train + validation, unseen reviews of
    the same distribution fired `oov_words_pct` (KS p 0.0001-0.003 over 5 windows, measured); against the
    held-out rows it is now compared with, p 0.96-1.
    """
    from tasks.data.loaders import load_tokenizer
    from tasks.data.prepare import DataConfig, prepare_data
    from tasks.monitoring.detect import detect_drift
    from tasks.monitoring.reports import ReportAbout
    from tasks.training.tokenizer import TokenizerConfig, train_tokenizer

    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    data = prepare_data(DataConfig(corpus=None, max_rows=100, text_column="review", label_column="sentiment"), ws)
    tokenizer = load_tokenizer(train_tokenizer(TokenizerConfig(vocab_size=3000), data, ws))
    reference = load_reference(data.uri)
    clf = _random_classifier(tokenizer, data.labels, tmp_path / "model")
    seen = set(pd.concat(reference.values())["text"])
    reviews = pd.read_csv(Path(ws.root, "demo", "reviews.csv"))
    unseen = reviews[~reviews["review"].isin(seen)].sample(300, random_state=0)
    window = pd.DataFrame({"text": unseen["review"].tolist(), "true_label": None})

    about = ReportAbout(model_name="m", model_version="7", window={"uri": "demo:reviews"}, reference_uri=data.uri)
    report = detect_drift(MonitorConfig(), reference, window, clf, tmp_path / "reports", "7", about)
    oov = next(s for s in report.signals if s.name == "oov_words_pct")
    assert not oov.fired, oov

    # Each report says what it compares: model and version, window, reference; shares where sizes differ.
    html = (tmp_path / "reports" / "inputs.html").read_text()
    assert "Input drift of m v7" in html and "300 rows from `demo:reviews`" in html and data.uri in html
    assert "Model drift of m v7" in (tmp_path / "reports" / "model.html").read_text()
    assert "distributions show the percent of each side" in html and '"title": "Percent"' in html


# ---------------------------------------------------------------- the flow against a registered champion


@dataclass
class Setup:
    config: PipelineConfig
    tracking: Tracking
    name: str
    version: str
    fresh: pd.DataFrame  # reference-distribution reviews the champion never saw
    shifted: pd.DataFrame


def _log_window(setup: Setup, window: pd.DataFrame, start: datetime) -> None:
    """Serve `window` with the champion and write what serving would write (with the true labels)."""
    from models.classifier import TextClassifier
    from tasks.monitoring.champion import find_champion

    clf = TextClassifier(find_champion(setup.tracking, setup.name).model_dir)
    probs = clf.predict_proba(window["text"].tolist())
    out = pd.DataFrame({f"prob_{lab}": probs[:, i] for i, lab in enumerate(clf.labels)})
    out.insert(0, "score", probs.max(axis=1))
    out.insert(0, "label", [clf.labels[i] for i in probs.argmax(axis=1)])
    rows = rows_from_predictions(window["text"].tolist(), out, setup.name, setup.version)
    rows["timestamp"] = [start + timedelta(seconds=i) for i in range(len(rows))]
    rows["true_label"] = window["true_label"].tolist()
    append_predictions(log_uri(setup.config.workspace.resolved()), rows)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prefect_server) -> Setup:
    from flows.pipeline import pipeline

    root = tmp_path_factory.mktemp("monitor") / "ws"
    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={root}", *FAST])
    run = pipeline(config)
    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    client = tracking.client()
    if "champion" not in client.get_registered_model(run.registered.name).aliases:
        # The FAST model is too small to pass the gate; monitoring needs a champion, not a good one.
        client.set_registered_model_alias(run.registered.name, "champion", run.registered.version)
    seen = set(pd.concat(load_reference(run.data.uri).values())["text"])
    demo = Path(root, "demo")
    base = pd.read_csv(demo / "reviews.csv").rename(columns={"review": "text", "sentiment": "true_label"})
    shifted = pd.read_csv(demo / "reviews_shifted.csv").rename(columns={"review": "text", "sentiment": "true_label"})
    s = Setup(config, tracking, run.registered.name, run.registered.version, base[~base["text"].isin(seen)], shifted)
    # 300 rows with 30% shifted samples at T0, 300 reference-like rows at T1.
    in_mixed = s.fresh.sample(210, random_state=1)
    mixed = pd.concat([in_mixed, s.shifted.sample(90, random_state=1)]).sample(frac=1, random_state=0)
    _log_window(s, mixed, T0)
    _log_window(s, s.fresh.drop(index=in_mixed.index).sample(300, random_state=2), T1)
    return s


def _drift_events(model: str, since: datetime, wait_for: str | None = None, timeout: float = 30) -> list:
    """`zero2one.drift.detected` events on the server since `since`: as soon as `wait_for` is there, else after
    `timeout` seconds (events travel asynchronously, so "none arrived" needs a wait)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    from flows.monitor import DRIFT_EVENT

    query = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=[DRIFT_EVENT]),
        resource=EventResourceFilter(id=[f"zero2one.model.{model}"]),
    )
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            events = client.read_events(query, limit=50).events
        if (wait_for and wait_for in {str(e.id) for e in events}) or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def _monitor(setup: Setup, window: WindowSource, **kwargs):
    from flows.monitor import monitor

    kwargs.setdefault("model_name", setup.name)
    kwargs.setdefault("pipeline_config", setup.config)
    return monitor(window=window, **kwargs)


@pytest.mark.slow
def test_window_with_30_percent_shifted_samples_is_flagged_and_emits_the_event(setup):
    start = datetime.now(timezone.utc)
    result = _monitor(setup, WindowSource(since=T0, until=T0 + timedelta(hours=1)))
    report = result.report
    assert report.status == "drift", report.reasons
    assert report.window_rows == 300 and report.labeled_rows == 300
    fired = {s.name for s in report.fired}
    assert {"text", "oov_words_pct"} <= fired, report.signals
    assert report.drift_share >= MonitorConfig().policy.drift_share

    # The HTML reports are in the workspace and in the MLflow run; the numbers are metrics there.
    assert Path(report.report_uri, "inputs.html").stat().st_size > 10_000
    header = Path(report.report_uri, "inputs.html").read_text()  # what the report is about, on top
    assert f"Input drift of {setup.name} v{setup.version}" in header and "2026-03-02 08:00:00 UTC to" in header
    client = setup.tracking.client()
    artifacts = {a.path for a in client.list_artifacts(report.mlflow_run_id, "monitor")}
    assert {"monitor/inputs.html", "monitor/model.html", "monitor/summary.json"} <= artifacts
    run = client.get_run(report.mlflow_run_id)
    assert run.data.metrics["drift_detected"] == 1 and run.data.metrics["text_fired"] == 1
    assert run.data.tags["zero2one.monitor_status"] == "drift"

    events = _drift_events(setup.name, start, wait_for=result.event_id)
    assert [str(e.id) for e in events] == [result.event_id]
    payload = events[0].payload
    assert (payload["model"], payload["version"], payload["alias"]) == (setup.name, setup.version, "champion")
    assert payload["window"]["since"].startswith("2026-03-02T08:00:00") and payload["window_rows"] == 300
    assert {s["name"] for s in payload["signals"]} == fired
    assert events[0].resource["zero2one.version"] == setup.version
    assert WindowSource.model_validate(payload["window"]).uri == log_uri(setup.config.workspace.resolved())


@pytest.mark.slow
def test_reference_like_window_is_not_flagged(setup):
    start = datetime.now(timezone.utc)
    result = _monitor(setup, WindowSource(since=T1, until=T1 + timedelta(hours=1)))
    assert result.report.status == "no_drift", result.report.reasons
    assert result.report.drift_share < MonitorConfig().policy.drift_share
    assert result.event_id is None
    assert _drift_events(setup.name, start, timeout=5) == []


@pytest.mark.slow
def test_too_small_window_is_insufficient_data_not_no_drift(setup):
    start = datetime.now(timezone.utc)
    result = _monitor(setup, WindowSource(last_n=50))
    report = result.report
    assert report.status == "insufficient_data"
    assert "50 rows" in report.reasons[0] and report.signals == []
    assert result.event_id is None
    run = setup.tracking.client().get_run(report.mlflow_run_id)
    assert run.data.tags["zero2one.monitor_status"] == "insufficient_data"
    assert _drift_events(setup.name, start, timeout=5) == []


@pytest.mark.slow
def test_bad_input_raises_and_emits_nothing(setup, tmp_path):
    start = datetime.now(timezone.utc)
    client = setup.tracking.client()
    before = sorted(str(v.version) for v in client.search_model_versions(f"name='{setup.name}'"))
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("review,sentiment\n" + "great phone,positive\n" * 300)
    with pytest.raises(PipelineInputError, match=r"no text column 'text'"):
        _monitor(setup, WindowSource(uri=str(no_text)))
    with pytest.raises(PipelineInputError, match="has no rows since 2030-01-01T00:00:00"):
        _monitor(setup, WindowSource(since=datetime(2030, 1, 1, tzinfo=timezone.utc)))
    with pytest.raises(PipelineInputError, match="registered model 'no-such-model' does not exist"):
        _monitor(setup, WindowSource(since=T0), model_name="no-such-model")
    with pytest.raises(PipelineInputError, match="has no version with alias 'retired'"):
        _monitor(setup, WindowSource(since=T0), alias="retired")
    # With --retrain-on-drift too: an error stops the flow before any event and any retraining.
    with pytest.raises(PipelineInputError, match=r"no text column 'text'"):
        _monitor(setup, WindowSource(uri=str(no_text)), retrain_on_drift=True)
    assert _drift_events(setup.name, start, timeout=5) == []
    after = sorted(str(v.version) for v in client.search_model_versions(f"name='{setup.name}'"))
    assert after == before  # nothing was retrained (the setup's gate may have registered a baseline version too)


@pytest.mark.slow
def test_cli_prints_the_verdict_and_fails_with_the_error(setup, tmp_path):
    import typer
    from typer.testing import CliRunner

    from cli.monitor import monitor, retrain

    app = typer.Typer()  # the way cli/app.py registers them
    app.command()(monitor)
    app.command()(retrain)
    common = ["--config", str(ROOT / "configs" / "tiny.yaml"), "--set", f"workspace.root={setup.config.workspace.root}"]
    until = (T1 + timedelta(hours=1)).isoformat()
    out = CliRunner().invoke(app, ["monitor", "--since", T1.isoformat(), "--until", until, *common])
    assert out.exit_code == 0, out.output
    assert f"{setup.name} v{setup.version}: no_drift" in out.output and "oov_words_pct" in out.output
    no_text = tmp_path / "window.csv"
    no_text.write_text("review,sentiment\ngreat phone,positive\n")
    bad = CliRunner().invoke(app, ["monitor", "--window", str(no_text), *common])
    assert bad.exit_code == 2 and "error: window" in bad.output and "no text column 'text'" in bad.output
    bad = CliRunner().invoke(app, ["monitor", "--drift-share", "2", *common])
    assert bad.exit_code == 2 and "--drift-share" in bad.output
    # `retrain` checks its data before any training: a file without the label column stops it.
    bad = CliRunner().invoke(app, ["retrain", "--data", str(no_text), "--text-column", "review", *common])
    assert bad.exit_code == 2 and "no label column 'true_label'" in bad.output


@pytest.mark.slow
def test_monitor_with_retrain_on_drift_closes_the_loop(setup):
    """What `zero2one monitor --retrain-on-drift` does where no automation reacts to the event."""
    from tasks.monitoring.champion import find_champion

    champion = find_champion(setup.tracking, setup.name)
    config = setup.config.model_copy(update={"finetune": setup.config.finetune.model_copy(update={"epochs": 1})})
    start = datetime.now(timezone.utc)
    window = WindowSource(since=T0, until=T0 + timedelta(hours=1))
    result = _monitor(setup, window, retrain_on_drift=True, pipeline_config=config)
    assert result.report.status == "drift" and result.event_id is not None
    assert [str(e.id) for e in _drift_events(setup.name, start, wait_for=result.event_id)] == [result.event_id]

    retrained = result.retrain
    assert retrained is not None and retrained.champion_before == champion.version
    added = retrained.data.added
    assert sum(added.values()) == 300 and added["test"] > 0  # the window's labeled rows, none in the reference
    run = retrained.pipeline
    assert run.encoder is None and run.model.base_model == champion.checkpoint_uri  # fine-tuned, not pretrained
    assert run.data.sizes["train"] == len(load_reference(champion.data_uri)["train"]) + added["train"]
    versions = {str(v.version) for v in setup.tracking.client().search_model_versions(f"name='{setup.name}'")}
    # A version of its own, newer than the champion (the gate may register a TF-IDF baseline version after it).
    assert retrained.new_version in versions and int(retrained.new_version) > int(champion.version)
    assert retrained.promoted == (run.verdict.passed and run.promotion is not None)
    assert retrained.champion_after == (retrained.new_version if retrained.promoted else champion.version)
    tags = setup.tracking.client().get_model_version(setup.name, retrained.new_version).tags
    assert tags["zero2one.lineage.data_uri"] == run.data.uri
    assert tags["zero2one.lineage.base_model"] == champion.checkpoint_uri
