"""Named entities as a model kind (#24, #26): the same flow, gate, registry and card as the classifier, asked
through `ModelKind`. Fast checks run in `make test`; the end-to-end run is marked `kinds` (`make test-kinds`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.errors import PipelineInputError
from flows.config import load_config
from tasks.kinds.entities.prepare import EntityDataConfig, prepare_entities

ROOT = Path(__file__).resolve().parents[1]
NAMES, PLACES = ["Bob", "Alice", "Carol", "Dave"], ["Paris", "Berlin", "Tokyo", "Rome"]
FILLER = ["we", "met", "in", "today", "and", "then", "went", "home", "with", "."]


def _sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng, out = random.Random(seed), []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(FILLER, rng.randint(2, 6))]
        words.insert(rng.randint(0, len(words)), (rng.choice(NAMES), "B-person"))
        words.insert(rng.randint(0, len(words)), (rng.choice(PLACES), "B-location"))
        out.append(words)
    return out


def _write(path: Path, sentences: list[list[tuple[str, str]]], separator: str = "\n") -> Path:
    """CoNLL as WNUT-17 ships it: token TAB tag; sentences end at an empty line or a tab-only one."""
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + separator for s in sentences))
    return path


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ner"
    folder.mkdir()
    _write(folder / "train.conll", _sentences(120, 0), separator="\t\n")
    _write(folder / "dev.conll", _sentences(24, 1))
    _write(folder / "test.conll", _sentences(24, 2))
    return folder


def test_the_presets_load_and_a_from_scratch_entity_run_is_accepted():
    from tasks.kinds.registry import kind

    assert load_config(ROOT / "configs" / "ner.yaml").task == "entities" and kind("entities").from_scratch
    scratch = load_config(ROOT / "configs" / "ner-scratch.yaml")
    assert scratch.pretrain.enabled and scratch.entity_finetune.base_model is None
    assert scratch.tokenizer_for_run().pretrained is None and not scratch.tokenizer.lowercase  # ours, cased
    assert load_config(None, ["task=entities", "entity_data.source=x"]).pretrain.enabled  # the defaults: from scratch
    with pytest.raises(PipelineInputError, match="pretrain.enabled=false needs entity_finetune.base_model"):
        load_config(None, ["task=entities", "entity_data.source=x", "pretrain.enabled=false"])


def test_prepare_keeps_the_folders_splits_and_refuses_a_type_training_never_shows(tmp_path):
    from core.workspace import Workspace

    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    folder = _folder(tmp_path)
    data = prepare_entities(EntityDataConfig(source=str(folder)), ws)
    assert data.sizes == {"train": 120, "validation": 24, "test": 24}  # tab-only separators read as ends
    assert data.types == ["location", "person"] and data.scheme == "IOB2"

    _write(folder / "test.conll", [[("Acme", "B-corporation"), ("rose", "O")]])
    with pytest.raises(PipelineInputError, match=r"test.conll.*test has entity type\(s\) \['corporation'\]"):
        prepare_entities(EntityDataConfig(source=str(folder)), ws)
    with pytest.raises(PipelineInputError, match="entity_data.source is required"):
        prepare_entities(EntityDataConfig(), ws)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT whose vocabulary holds the synthetic words (no hub download)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *{w.lower() for w in NAMES + PLACES + FILLER}]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.mark.kinds
def test_an_entity_tagger_runs_through_the_flow_gate_registry_and_card(tmp_path, tiny_encoder, prefect_server):
    import mlflow
    import pandas as pd

    from core.registry_names import TASK
    from flows.pipeline import pipeline
    from tasks.kinds.registry import kind

    folder = _folder(tmp_path)
    config = load_config(
        ROOT / "configs" / "ner.yaml",
        [
            f"workspace.root={tmp_path / 'ws'}",
            f"entity_data.source={folder}",
            f"entity_finetune.base_model={tiny_encoder}",
            "entity_finetune.epochs=8",
            "entity_finetune.optim.learning_rate=0.005",
            "entity_optimize.int8_weights=true",
        ],
    )
    result = pipeline(config)
    assert result.task == "entities" and result.evaluation.model.f1 > result.evaluation.memorization.f1 - 1
    assert result.registered.tags[TASK] == "entities" and result.verdict.metric == "f1"
    assert {r.name for r in result.verdict.rules} >= {"evaluation", "baseline", "champion", "parity", "min_f1"}
    assert result.optimized is not None and set(result.optimized.agreement) == {"int8", "int8-weights", "fp32"}
    client = mlflow.MlflowClient(result.tracking_uri)
    card = client.download_artifacts(result.registered.run_id, "model_card.md", str(tmp_path))
    assert "strict entity match" in Path(card).read_text() and "CRF (word features)" in Path(card).read_text()
    mlflow.set_tracking_uri(result.tracking_uri)
    found = mlflow.pyfunc.load_model(result.registered.model_uri).predict(pd.DataFrame({"text": ["Bob went to Paris"]}))
    assert all({"type", "start", "end", "text", "score"} <= set(e) for e in found["entities"][0])
    from tests.test_serving import mlflow_models_predict

    version = f"models:/{result.registered.name}/{result.registered.version}"
    (said,) = mlflow_models_predict(result.tracking_uri, version, {"inputs": ["Bob went to Paris"]}, tmp_path)
    spans = [(e["type"], e["start"], e["end"], e["text"]) for e in said["entities"]]  # MLflow's own command line
    assert spans == [(e["type"], e["start"], e["end"], e["text"]) for e in found["entities"][0]]
    from typer.testing import CliRunner

    from cli.app import app

    args = ["predict", "--workspace", str(tmp_path / "ws"), "--model", version.removeprefix("models:/")]
    printed = CliRunner().invoke(app, [*args, "Bob went to Paris"], catch_exceptions=False)
    assert printed.exit_code == 0 and "entities" in printed.output, printed.output

    # Served: POST /predict answers with the entities of each text, journaled like a classifier's answers.
    import httpx

    from tests.test_serving import Server, _cfg

    client.set_registered_model_alias(result.registered.name, "champion", result.registered.version)
    with Server(_cfg(tmp_path / "ws", model_name=result.registered.name)) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"texts": ["Bob went to Paris", "we met today"]}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == result.registered.version and len(body["entities"]) == 2
        for entity in body["entities"][0]:
            assert "Bob went to Paris"[entity["start"] : entity["end"]] == entity["text"]

    # Watched: the champion's descriptors on its held-out sentences against a window of served-like texts.
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from tasks.monitoring.champion import find_champion
    from tasks.monitoring.config import MonitorConfig
    from tasks.monitoring.policy import DriftPolicy
    from tasks.monitoring.reports import ReportAbout

    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    champion = find_champion(Tracking.resolve(TrackingConfig(), ws), result.registered.name)
    same = [" ".join(w for w, _ in s) for s in _sentences(40, 7)]
    shifted = ["the quarterly report of the board was long and dull" for _ in range(40)]  # no names, unseen words
    cfg = MonitorConfig(policy=DriftPolicy(min_rows=20))
    calm = kind("entities").detect_drift(
        cfg, champion, pd.DataFrame({"text": same}), tmp_path / "m1", ReportAbout(), ws
    )
    moved = kind("entities").detect_drift(
        cfg, champion, pd.DataFrame({"text": shifted}), tmp_path / "m2", ReportAbout(), ws
    )
    assert {s.name for s in calm.signals} >= {"entities", "unknown_word_share", "mean_confidence"}
    assert len(moved.fired) > len(calm.fired) and "unknown_word_share" in {s.name for s in moved.fired}

    # Retrained on newly labelled sentences from a file: the champion's data plus them, from its checkpoint.
    from flows.retrain import retrain
    from tasks.monitoring.windows import WindowSource

    labelled = _write(tmp_path / "new.conll", _sentences(30, 11))
    again = retrain(result.registered.name, new_data=WindowSource(uri=str(labelled)), pipeline_config=config)
    assert again.new_version != result.registered.version and sum(again.data.added.values()) > 0
    assert again.pipeline.model.base_model == result.model.uri  # fine-tuned further from the champion


@pytest.mark.kinds
def test_an_entity_tagger_from_scratch_pretrains_on_its_sentences_and_is_judged(tmp_path, prefect_server):
    """Tokenizer and masked-LM pretraining on the training sentences (a few steps), a new token-classification head
    on that encoder, then evaluation against the baselines and the gate: seconds of CPU, not a good model."""
    from transformers import AutoModelForTokenClassification

    from flows.pipeline import pipeline

    config = load_config(
        ROOT / "configs" / "ner-scratch.yaml",
        [
            f"workspace.root={tmp_path / 'ws'}",
            f"entity_data.source={_folder(tmp_path)}",
            "tokenizer.vocab_size=100",
            "tokenizer.min_frequency=1",
            "pretrain.max_steps=8",
            "pretrain.save_steps=4",
            "pretrain.optim.batch_size=16",
            "pretrain.optim.warmup_steps=2",
            "entity_finetune.epochs=2",
            "entity_optimize.enabled=false",
        ],
    )
    result = pipeline(config)
    assert result.tokenizer.trained and result.encoder is not None and result.encoder.global_step == 8
    assert result.model.base_model == result.encoder.uri  # the encoder pretrained here, no checkpoint
    assert result.model.pretrain_run_id == result.encoder.mlflow_run_id
    tagger = AutoModelForTokenClassification.from_pretrained(str(Path(result.model.uri.removeprefix("file://"))))
    assert tagger.config.max_position_embeddings == 64 and tagger.config.id2label[0] == "O"  # the encoder's shape
    report = result.evaluation
    assert report.test_size == 24 and 0 <= report.model.f1 <= 1 and report.crf.f1 > 0
    assert {r.name for r in result.verdict.rules} >= {"evaluation", "baseline", "champion", "min_f1"}
    assert result.verdict.passed == (not result.verdict.reasons)
