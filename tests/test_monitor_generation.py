"""Drift monitoring of a generator champion (issue 17): prompt and answer descriptors, prompt embeddings from the
champion's hidden states, the refusal descriptor, the retrain data, and the `monitor` flow end to end.

The champion is a tiny random Llama with a byte-level tokenizer trained on the demo's training prompts, registered
into a temporary SQLite MLflow with the lineage tags the register stage writes (seconds, no training), so the
monitor finds its prepared instruction data as it would a trained one. Windows are small (policy.min_rows=50).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import sacrebleu

from core.prediction_log import append_predictions, log_uri
from core.registry_names import LINEAGE_CHECKPOINT_URI, LINEAGE_DATA_FINGERPRINT, LINEAGE_DATA_URI, TASK
from core.tracking import Tracking
from flows.config import PipelineConfig, load_config
from models.decoder import DecoderShape, build_causal_lm
from models.generator import TextGenerator
from tasks.kinds.generation.data import InstructionDataConfig, prepare_instructions
from tasks.kinds.generation.demo import write_demo_instructions
from tasks.kinds.generation.registry import log_generator
from tasks.kinds.generation.tokenizer import train_byte_bpe
from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.generation_detect import MAX_NEW_TOKENS, detect_generation_drift, load_chat_reference
from tasks.monitoring.policy import DriftPolicy
from tasks.monitoring.windows import WindowSource

ROOT = Path(__file__).resolve().parent.parent
NAME = "generator-monitor-test"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)  # the shifted window's hour, in the prediction log
CONFIG = MonitorConfig(policy=DriftPolicy(min_rows=50, min_labeled_rows=20), sample_rows=100, model_rows=60)
N = 80  # rows per window


@dataclass
class Setup:
    config: PipelineConfig
    tracking: Tracking
    version: str
    model_dir: Path
    reference: dict[str, pd.DataFrame]
    fresh: pd.DataFrame  # demo prompts of the reference distribution that the champion's data does not hold
    shifted: pd.DataFrame


def _champion(folder: Path, prompts: list[str]) -> Path:
    tok = train_byte_bpe(prompts, vocab_size=400)
    shape = DecoderShape(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_length=256)
    model = build_causal_lm(shape, len(tok), tok.pad_token_id, tok.eos_token_id)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _frame(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return pd.DataFrame({"text": [r["prompt"] for r in rows], "true_label": [r["response"] for r in rows]})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, prefect_server) -> Setup:
    root = tmp_path_factory.mktemp("monitor-generation")
    config = load_config(ROOT / "configs" / "tiny-generation.yaml", [f"workspace.root={root / 'ws'}"])
    ws = config.workspace.resolved()
    sizes = {"train": 200, "validation": 40, "test": 40}
    demo = write_demo_instructions(root / "demo", sizes, n_corpus=10, n_shifted=N, seed=0)
    data = prepare_instructions(InstructionDataConfig(source=str(demo.instructions), corpus=None), ws)
    reference = load_chat_reference(data.uri)
    model_dir = _champion(root / "champion", reference["train"]["text"].tolist())
    tracking = Tracking.resolve(config.tracking, ws)
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(model_dir, reference["test"]["text"].tolist()[:1])
    tags = {
        TASK: "generation",
        LINEAGE_DATA_URI: data.uri,
        LINEAGE_CHECKPOINT_URI: str(model_dir),
        LINEAGE_DATA_FINGERPRINT: data.fingerprint,
    }
    version = str(mlflow.register_model(info.model_uri, NAME, tags=tags).version)
    tracking.client().set_registered_model_alias(NAME, "champion", version)
    seen = set(pd.concat(reference.values())["text"])
    other = write_demo_instructions(root / "fresh", {"train": 400}, n_corpus=10, n_shifted=10, seed=1)
    fresh = _frame(other.instructions / "train.jsonl")
    fresh = fresh[~fresh["text"].isin(seen)].reset_index(drop=True)
    return Setup(config, tracking, version, model_dir, reference, fresh, _frame(demo.instructions_shifted))


def _detect(setup: Setup, window: pd.DataFrame, tmp_path: Path):
    gen = TextGenerator(setup.model_dir)
    window = window.assign(true_label=None) if "true_label" not in window else window
    return detect_generation_drift(CONFIG, setup.reference, window, gen, tmp_path, setup.version)


def test_clean_window_is_not_flagged(setup, tmp_path):
    report = _detect(setup, setup.fresh.iloc[:N].assign(true_label=None), tmp_path)
    assert report.status == "no_drift", report.reasons
    names = {s.name for s in report.signals}
    assert names == {
        "prompt", "prompt_length", "prompt_non_letter_pct", "prompt_oov_words_pct", "prompt_embeddings",
        "response_length", "response_non_letter_pct", "refusal",
    }  # fmt: skip
    assert (tmp_path / "inputs.html").stat().st_size > 10_000 and (tmp_path / "model.html").exists()


def test_window_of_shifted_prompts_is_flagged(setup, tmp_path):
    report = _detect(setup, setup.shifted.iloc[:N].assign(true_label=None), tmp_path)
    assert report.status == "drift", report.reasons
    fired = {s.name for s in report.fired}
    assert {"prompt", "prompt_oov_words_pct"} <= fired, report.signals


def test_refusal_descriptor_fires_on_a_window_of_refusals(setup, tmp_path):
    refusals = ["I cannot help with that.", "Sorry, I can't answer this.", "As an AI, I cannot judge reviews."]
    window = setup.fresh.iloc[N : 2 * N].assign(
        true_label=None, response=[refusals[i % 3] for i in range(N)], model_version=setup.version
    )
    report = _detect(setup, window, tmp_path)
    refusal = next(s for s in report.signals if s.name == "refusal")
    assert refusal.fired and refusal.group == "model", refusal
    assert report.status == "drift"


def _log(setup: Setup, window: pd.DataFrame, start: datetime) -> pd.DataFrame:
    """What serving journals for chat completions, with the reference answers someone added as `true_label`. The
    served answers are the references themselves: this random champion answers "" to every prompt (chrF 0 whatever
    is compared), so only known, different scores on the two sides show which answers the monitor scores."""
    answers = window["true_label"].tolist()
    messages = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": t}] for t in window["text"]]
    rows = pd.DataFrame(
        {
            "timestamp": [start + timedelta(seconds=i) for i in range(len(window))],
            "text": window["text"].tolist(),
            "label": "length",
            "score": 0.5,
            "probs": "{}",
            "model_name": NAME,
            "model_version": setup.version,
            "true_label": window["true_label"].tolist(),
            "response": answers,
            "generation": [json.dumps({"endpoint": "chat", "messages": m, "params": {}}) for m in messages],
        }
    )
    append_predictions(log_uri(setup.config.workspace.resolved()), rows)
    return rows


def test_monitor_flow_on_a_generator_flags_shifted_traffic_and_emits_the_event(setup):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    from flows.monitor import DRIFT_EVENT, monitor

    logged = _log(setup, setup.shifted.iloc[:N], T0)
    start = datetime.now(timezone.utc)
    window = WindowSource(since=T0, until=T0 + timedelta(hours=1))
    held_out = pd.concat([setup.reference["validation"], setup.reference["test"]], ignore_index=True)
    every_row = CONFIG.model_copy(update={"model_rows": max(N, len(held_out))})  # no sampling: known answers
    result = monitor(model_name=NAME, window=window, config=every_row, pipeline_config=setup.config)
    report = result.report
    assert report.status == "drift" and report.labeled_rows == N, report.reasons
    # chrF of the answers served in the window (the references: 100) and of the champion's greedy answers to its
    # held-out prompts, each against their references (sacrebleu's corpus chrF): swapped sides, or answers
    # re-generated where served ones exist (""), change them.
    served = sacrebleu.corpus_chrf(logged["response"].tolist(), [logged["true_label"].tolist()]).score
    assert served == 100.0
    greedy = TextGenerator(setup.model_dir).generate(held_out["chat"].tolist(), MAX_NEW_TOKENS)
    held_out_chrf = sacrebleu.corpus_chrf(greedy, [held_out["true_label"].tolist()]).score
    assert report.quality == pytest.approx({"chrf": served, "reference_chrf": held_out_chrf})
    chrf = next(s for s in report.signals if s.name == "chrf")
    assert chrf.score == pytest.approx(held_out_chrf - served)
    run = setup.tracking.client().get_run(report.mlflow_run_id)
    assert run.data.metrics["drift_detected"] == 1 and "prompt_embeddings_score" in run.data.metrics
    artifacts = {a.path for a in setup.tracking.client().list_artifacts(report.mlflow_run_id, "monitor")}
    assert {"monitor/inputs.html", "monitor/model.html", "monitor/summary.json"} <= artifacts

    query = EventFilter(occurred=EventOccurredFilter(since=start), event=EventNameFilter(name=[DRIFT_EVENT]))
    deadline, events = time.monotonic() + 30, []
    while time.monotonic() < deadline and result.event_id not in {str(e.id) for e in events}:
        with get_client(sync_client=True) as client:
            events = client.read_events(query, limit=10).events
        time.sleep(0.5)
    assert [str(e.id) for e in events] == [result.event_id]
    assert events[0].payload["model"] == NAME and events[0].payload["labeled_rows"] == N


def test_retrain_data_holds_the_windows_pairs(setup):
    """After the flow test logged the shifted window: its pairs, with the served conversation, join the splits."""
    from tasks.monitoring.champion import find_champion
    from tasks.monitoring.generation_retrain_data import write_generation_retrain_data

    champion = find_champion(setup.tracking, NAME)
    assert champion.task == "generation" and champion.labels == []
    ws = setup.config.workspace.resolved()
    data = write_generation_retrain_data(champion, WindowSource(since=T0, until=T0 + timedelta(hours=1)), ws)
    assert sum(data.added.values()) == N and data.added["test"] > 0
    chats = {s: [json.loads(x)["messages"] for x in Path(data.uri, f"{s}.jsonl").read_text().splitlines()]
             for s in ("train", "validation", "test")}  # fmt: skip
    assert len(chats["test"]) == len(setup.reference["test"]) + data.added["test"]
    new = chats["train"][: data.added["train"]]  # the new pairs come first (the gate reads the top of test)
    pairs = dict(zip(setup.shifted["text"], setup.shifted["true_label"], strict=True))
    assert chats["train"][data.added["train"] :][0][-2]["content"] == setup.reference["train"]["text"][0]
    for chat in new:
        assert chat[0] == {"role": "system", "content": "Be brief."} and chat[-1]["role"] == "assistant"
        assert chat[-1]["content"] == pairs[chat[1]["content"]]


def test_cli_monitor_on_a_generator_prints_the_verdict_and_the_event(setup):
    """`zero2one monitor` with the generation preset: the same command, options and output as for a classifier."""
    import typer
    from typer.testing import CliRunner

    from cli.monitor import monitor

    app = typer.Typer()  # the way cli/app.py registers it
    app.command()(monitor)
    args = ["--model", NAME, "--since", T0.isoformat(), "--until", (T0 + timedelta(hours=1)).isoformat()]
    args += ["--config", str(ROOT / "configs" / "tiny-generation.yaml")]
    for key, value in (("workspace.root", setup.config.workspace.root), ("monitor.policy.min_rows", 50),
                       ("monitor.policy.min_labeled_rows", 20), ("monitor.model_rows", 60)):  # fmt: skip
        args += ["--set", f"{key}={value}"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert f"{NAME} v{setup.version}: drift" in out.output and "prompt_embeddings" in out.output
    assert "refusal" in out.output and "Emitted zero2one.drift.detected" in out.output
