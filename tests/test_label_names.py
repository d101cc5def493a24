"""Label names are data (issue 23): any label a user's file holds runs through every stage that names labels.

BANKING77's `reverted_card_payment?` crashed evaluate (MLflow refuses the metric name) after minutes of training.
Here a label set with '?', '/', "'", spaces, emoji and Chinese runs through data, evaluate, the gate, the model card,
the registered pyfunc, the service's /predict and the monitor; the per-class metrics are stored under mapped names
and the mapping is kept in the evaluation run.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow.utils.validation import _validate_metric_name

from tasks.data.label_names import metric_names
from tests.conftest import FAST, ROOT

LABELS = ["reverted_card_payment?", "card/atm", "don't know", "two words", "great 👍", "差评"]
WORDS = ["refund reversed charge", "cash machine withdrawal", "unsure unclear maybe", "plain ordinary neutral"]
WORDS += ["wonderful happy superb", "terrible awful broken"]


def test_metric_names_are_storable_and_distinct():
    names = metric_names([*LABELS, "a?", "a_", "great _"])
    assert names["reverted_card_payment?"] == "reverted_card_payment_" and names["差评"] == "差评"
    assert names["two words"] == "two words" and names["a_"] == "a_" and names["a?"] == "a__2"
    assert len(set(names.values())) == len(names)  # 'great 👍' and 'great _' stay apart
    for name in names.values():
        _validate_metric_name(f"test_precision_{name}")  # MLflow's own check: raises on a name it refuses


def test_the_data_stage_says_how_labels_will_be_named_before_any_compute(tmp_path, caplog):
    import logging

    from core.workspace import Workspace
    from tasks.data.prepare import DataConfig, prepare_data

    caplog.set_level(logging.INFO, logger="zero2one")
    cfg = DataConfig(source=_write(tmp_path / "intents.csv"), text_column="msg", label_column="intent")
    prepared = prepare_data(cfg, Workspace(root=str(tmp_path / "ws")))
    assert prepared.labels == sorted(LABELS)  # stored as they are, none refused
    assert (
        "'reverted_card_payment?': 'reverted_card_payment_'" in caplog.text and "'great 👍': 'great _'" in caplog.text
    )


def test_the_confusion_figure_draws_any_label():
    """matplotlib reads '$...$' as math: before, a label pair like '$x^$' crashed evaluate's figure."""
    import io

    from tasks.judging.scoring import confusion_figure

    labels = ["$x^$", "a_{b}$", *LABELS]
    counts = [[int(i == j) for j in range(len(labels))] for i in range(len(labels))]
    confusion_figure(counts, labels, "test").savefig(io.BytesIO(), dpi=40)


def _write(path: Path) -> str:
    rows = [{"msg": f"{WORDS[i % 6]} message {i} number {i * 7 % 13}", "intent": LABELS[i % 6]} for i in range(600)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(ws: Path, texts: list[str]) -> list[dict]:
    """The real service on loopback: /predict answers with the labels as they are."""
    import uvicorn

    from serving.app import create_app
    from serving.config import ServeConfig

    cfg = ServeConfig(workspace=str(ws), port=_free_port())
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=cfg.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url, deadline = f"http://127.0.0.1:{cfg.port}", time.time() + 90
    try:
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        answers = []
        for i in range(0, len(texts), 16):
            r = httpx.post(f"{url}/predict", json={"texts": texts[i : i + 16]}, timeout=60)
            assert r.status_code == 200, r.text
            answers += r.json()["predictions"]
        return answers
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
def test_unusual_label_names_run_end_to_end(prefect_server, tmp_path):
    import mlflow

    from core.tracking import Tracking
    from flows.config import load_config
    from flows.monitor import monitor
    from flows.pipeline import pipeline
    from tasks.monitoring.windows import WindowSource

    ws = tmp_path / "ws"
    source = _write(tmp_path / "intents.csv")
    sets = [f"data.source={source}", "data.text_column=msg", "data.label_column=intent"]
    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", *FAST, *sets])
    result = pipeline(config)  # data, tokenizer, pretrain, finetune, evaluate, optimize, register, gate, card
    assert result.data.labels == sorted(LABELS)

    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    client = tracking.client()
    metrics = client.get_run(result.evaluation.mlflow_run_id).data.metrics
    names = metric_names(result.data.labels)
    for label, name in names.items():
        assert metrics[f"test_precision_{name}"] == pytest.approx(result.evaluation.model.per_class[label]["precision"])
    kept = json.loads(
        Path(
            client.download_artifacts(result.evaluation.mlflow_run_id, "evaluation/label_metric_names.json")
        ).read_text(encoding="utf-8")
    )
    assert kept == names
    card = client.download_artifacts(result.registered.run_id, "model_card.md")
    assert all(label in Path(card).read_text(encoding="utf-8") for label in LABELS)
    assert result.verdict.challenger is not None  # the gate scored it

    name, version = result.registered.name, result.registered.version
    if "champion" not in client.get_registered_model(name).aliases:  # FAST models rarely pass the gate
        client.set_registered_model_alias(name, "champion", version)
    tracking.activate()
    texts = [f"{WORDS[i % 6]} message {1000 + i}" for i in range(120)]
    frame = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"text": texts[:6]}))
    assert set(frame["label"]) <= set(LABELS) and {f"prob_{lab}" for lab in LABELS} <= set(frame.columns)

    start = datetime.now(UTC)
    answers = _serve(ws, texts)
    assert len(answers) == len(texts) and {a["label"] for a in answers} <= set(LABELS)
    assert set(answers[0]["probabilities"]) == set(LABELS)

    report = monitor(model_name=name, window=WindowSource(since=start), pipeline_config=config).report
    assert report.window_rows == len(texts)


def test_the_confusion_figure_of_77_classes_stays_drawable():
    """BANKING77: a 95-inch figure with 5,929 cell texts took 100 s and 4 GB to save (measured); now capped."""
    from tasks.judging.scoring import confusion_figure

    labels = [f"intent {i}?" for i in range(77)]
    fig = confusion_figure([[int(i == j) for j in range(77)] for i in range(77)], labels, "test")
    assert max(fig.get_size_inches()) <= 18 and not fig.axes[0].texts
    few = confusion_figure([[2, 1], [0, 3]], ["neg", "pos"], "test")
    assert [t.get_text() for t in few.axes[0].texts] == ["2", "1", "0", "3"]  # small sets keep their counts


def test_markdown_tables_keep_their_columns_whatever_the_labels():
    """The per-class tables of the evaluation summary and the data report put labels in cells and headers."""
    import re

    from core.reporting import md_table

    table = md_table([{"class": "refund|billing", "line\nbreak": 1, "差评 👍": 0.5}])
    for line in table.splitlines():
        assert len(re.findall(r"(?<!\\)\|", line)) == 4, line  # 3 columns: 4 unescaped bars
