"""Extractive question answering as a model kind (#24, #26): the same flow, gate, registry and card as the other
kinds, asked through `ModelKind`. Fast checks run in `make test`; the end-to-end run is marked `kinds`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.errors import PipelineInputError
from flows.config import load_config
from tasks.kinds.answers.prepare_stage import AnswerDataConfig, prepare_questions

ROOT = Path(__file__).resolve().parents[1]
NAMES, PLACES = ["bob", "alice", "carol", "dave", "erin", "frank"], ["paris", "berlin", "tokyo", "rome", "oslo"]
FILLER = ["we", "met", "today", "and", "then", "went", "home", "with", "friends", "."]


def _article(rng: random.Random, a: int) -> dict:
    """Three people, each in one place; one question per person ("where does X live ?" -> the place)."""
    people = rng.sample(NAMES, 3)
    context, qas = "", []
    for person in people:
        place = rng.choice(PLACES)
        filler = " ".join(rng.sample(FILLER[:-1], 3))
        sentence = f"{person} lives in "
        qas.append(
            {"id": f"a{a}-{person}", "question": f"where does {person} live ?",
             "answers": [{"text": place, "answer_start": len(context) + len(sentence)}]}
        )  # fmt: skip
        context += f"{sentence}{place} . {filler} . "
    return {"title": f"article {a}", "paragraphs": [{"context": context.strip(), "qas": qas}]}


def _squad(path: Path, articles: int = 60, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text(json.dumps({"version": "1.1", "data": [_article(rng, a) for a in range(articles)]}))
    return path


def test_the_presets_load_and_a_from_scratch_answers_run_is_accepted():
    from tasks.kinds.registry import kind

    config = load_config(ROOT / "configs" / "qa.yaml")
    assert config.task == "answers" and config.registry.model_name == "zero2one-answers"
    assert load_config(ROOT / "configs" / "qa-gpu.yaml").answer_evaluate.max_questions is None
    scratch = load_config(ROOT / "configs" / "qa-scratch.yaml")
    assert scratch.pretrain.enabled and scratch.answer_finetune.base_model is None and kind("answers").from_scratch
    assert scratch.tokenizer_for_run().pretrained is None  # ours, trained on the contexts and questions
    assert scratch.answer_finetune.max_length <= scratch.pretrain.shape.max_length  # windows fit the encoder
    assert load_config(None, ["task=answers", "answer_data.source=x"]).pretrain.enabled  # the defaults: from scratch
    with pytest.raises(PipelineInputError, match="pretrain.enabled=false needs answer_finetune.base_model"):
        load_config(None, ["task=answers", "answer_data.source=x", "pretrain.enabled=false"])


def test_prepare_splits_by_article_and_refuses_a_misplaced_answer_naming_it(tmp_path):
    from core.workspace import Workspace
    from tasks.data.loaders import load_splits

    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    data = prepare_questions(AnswerDataConfig(source=str(_squad(tmp_path / "qa.json"))), ws)
    assert sum(data.sizes.values()) == 180 and data.scoring == "squad" and data.language == "en"
    splits = load_splits(data)
    contexts = {s: set(splits[s]["context"]) for s in ("train", "validation", "test")}
    assert not (contexts["train"] & contexts["test"]) and not (contexts["train"] & contexts["validation"])
    assert data.sizes["test"] >= 18 and data.articles["test"] == data.sizes["test"] // 3

    doc = json.loads((tmp_path / "qa.json").read_text())
    doc["data"][7]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] += 2
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(PipelineInputError, match=r"bad.json \(data\[7\].paragraphs\[0\]\): question 'a7-\w+': answer"):
        prepare_questions(AnswerDataConfig(source=str(tmp_path / "bad.json")), ws)
    repaired = prepare_questions(AnswerDataConfig(source=str(tmp_path / "bad.json"), offsets="repair"), ws)
    assert repaired.repaired == 1
    with pytest.raises(PipelineInputError, match="answer_data.source is required"):
        prepare_questions(AnswerDataConfig(), ws)

    folder = tmp_path / "folder"  # train + dev as CMRC 2018 ships them: test is cut from train, by article
    folder.mkdir()
    _squad(folder / "train.json", 40, seed=1)
    (folder / "dev.json").write_text((tmp_path / "qa.json").read_text())
    with pytest.raises(PipelineInputError, match=r"folder: question id 'a\d+-\w+' appears more than once"):
        prepare_questions(AnswerDataConfig(source=str(folder)), ws)
    (folder / "dev.json").write_text((tmp_path / "qa.json").read_text().replace('"id": "a', '"id": "dev-a'))
    kept = prepare_questions(AnswerDataConfig(source=str(folder), max_train_questions=50), ws)
    assert kept.sizes["validation"] == 180 and kept.sizes["train"] == 50 and kept.articles["test"] >= 4
    judged_on_dev = prepare_questions(AnswerDataConfig(source=str(folder), dev_file="test"), ws)
    assert judged_on_dev.sizes["test"] == 180 and judged_on_dev.articles["validation"] >= 1  # cut from train
    assert judged_on_dev.sizes["train"] + judged_on_dev.sizes["validation"] == 120
    _squad(folder / "test.json", 20, seed=2)
    with pytest.raises(PipelineInputError, match="dev_file=test, but the folder has a test file"):
        prepare_questions(AnswerDataConfig(source=str(folder), dev_file="test"), ws)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT whose vocabulary holds the synthetic words (no hub download)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({*NAMES, *PLACES, *FILLER, "where", "does", "live", "lives", "in", "?"})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(str(folder))
    return folder


def test_the_served_reader_answers_as_the_answers_decoder_does(tiny_encoder):
    """models/span_reader.py mirrors tasks/kinds/answers (features + decode): same spans on windows of long texts."""
    from models.span_reader import ReaderSettings, SpanReader, torch_logits
    from tasks.kinds.answers.decode import DecodeConfig
    from tasks.kinds.answers.features import WindowConfig
    from tasks.kinds.answers.predict import read_answers, torch_runner
    from tasks.kinds.answers.reader import QAExample
    from tasks.kinds.answers.train import load_reader

    tokenizer, model = load_reader(str(tiny_encoder))
    rng = random.Random(1)
    examples = [
        QAExample(str(i), f"where does {rng.choice(NAMES)} live ?", " ".join(rng.choices(NAMES + PLACES + FILLER, k=n)))
        for i, n in enumerate((5, 40, 90))
    ]
    windows, decoding = WindowConfig(max_length=32, stride=8), DecodeConfig(max_answer_tokens=5)
    expected = read_answers(torch_runner(model.eval()), tokenizer, examples, windows, decoding, batch_size=1)
    # A question's answer does not depend on which questions share its batch (padding once took n-best slots).
    batched = read_answers(torch_runner(model.eval()), tokenizer, examples, windows, decoding, batch_size=3)
    assert all(
        abs(batched[k].score - expected[k].score) < 1e-4 and batched[k].text == expected[k].text for k in expected
    )
    settings = ReaderSettings(max_length=32, stride=8, max_answer_tokens=5)
    found = SpanReader(tokenizer, torch_logits(model), settings, batch_size=2).spans(
        [ex.question for ex in examples], [ex.context for ex in examples]
    )
    assert [(s.start, s.end, s.text) for s in found] == [(expected[ex.id].start, expected[ex.id].end,
                                                           expected[ex.id].text) for ex in examples]  # fmt: skip
    assert all(abs(s.score - expected[ex.id].score) < 1e-4 for s, ex in zip(found, examples, strict=True))


@pytest.mark.kinds
def test_a_question_answerer_runs_through_the_flow_gate_registry_and_card(tmp_path, tiny_encoder, prefect_server):
    import mlflow
    import pandas as pd

    from core.registry_names import TASK
    from flows.pipeline import pipeline

    config = load_config(
        ROOT / "configs" / "qa.yaml",
        [
            f"workspace.root={tmp_path / 'ws'}",
            f"answer_data.source={_squad(tmp_path / 'qa.json')}",
            "answer_data.max_train_questions=null",
            f"answer_finetune.base_model={tiny_encoder}",
            "answer_finetune.epochs=6",
            "answer_finetune.max_length=64",
            "answer_finetune.doc_stride=16",
            "answer_finetune.validation_questions=10",
            "answer_finetune.optim.learning_rate=0.005",
            "answer_evaluate.floor_questions=5",
        ],
    )
    result = pipeline(config)
    assert result.task == "answers" and result.registered.tags[TASK] == "answers" and result.verdict.metric == "f1"
    assert result.evaluation.floor is not None and result.evaluation.test_size == result.data.sizes["test"]
    assert {r.name for r in result.verdict.rules} >= {"evaluation", "baseline", "champion", "parity", "min_f1"}
    assert result.optimized is not None and set(result.optimized.agreement) == {"int8", "fp32"}  # unasked: no weights
    assert result.optimized.agreement["fp32"] >= 0.95  # the same graph in fp32 answers as PyTorch does
    client = mlflow.MlflowClient(result.tracking_uri)
    card = Path(client.download_artifacts(result.registered.run_id, "model_card.md", str(tmp_path))).read_text()
    assert "SQuAD v1.1 normalisation" in card and "lexical (window" in card
    mlflow.set_tracking_uri(result.tracking_uri)
    served = mlflow.pyfunc.load_model(result.registered.model_uri)
    out = served.predict(pd.DataFrame([{"question": "where does bob live ?", "context": "bob lives in oslo ."}]))
    assert list(out.columns) == ["answer", "start", "end", "score", "no_answer"]
    assert out["no_answer"][0] or "bob lives in oslo ."[out["start"][0] : out["end"][0]] == out["answer"][0]

    # The command line asks the same model: questions as TEXTS, the passage as --context.
    from typer.testing import CliRunner

    from cli.app import app

    model = f"{result.registered.name}/{result.registered.version}"
    args = ["predict", "--workspace", str(tmp_path / "ws"), "--model", model, "--context", "bob lives in oslo ."]
    said = CliRunner().invoke(app, [*args, "where does bob live ?"], catch_exceptions=False)
    assert said.exit_code == 0 and "no_answer" in said.output, said.output
    from tests.test_serving import mlflow_models_predict

    pair = {"question": "where does bob live ?", "context": "bob lives in oslo ."}
    (answer,) = mlflow_models_predict(result.tracking_uri, f"models:/{model}", {"dataframe_records": [pair]}, tmp_path)
    assert set(answer) == {"answer", "start", "end", "score", "no_answer"}


@pytest.mark.kinds
def test_a_question_answerer_from_scratch_pretrains_on_its_contexts_and_is_judged(tmp_path, prefect_server):
    """Tokenizer and masked-LM pretraining on the training contexts and questions (a few steps), a new QA head on
    that encoder with windows cut to its positions, then evaluation against the lexical baseline and the gate."""
    import json as json_

    from flows.pipeline import pipeline

    config = load_config(
        ROOT / "configs" / "qa-scratch.yaml",
        [
            f"workspace.root={tmp_path / 'ws'}",
            f"answer_data.source={_squad(tmp_path / 'qa.json')}",
            "answer_data.max_train_questions=null",
            "tokenizer.vocab_size=100",
            "tokenizer.min_frequency=1",
            "pretrain.shape.max_length=64",
            "pretrain.max_steps=8",
            "pretrain.save_steps=4",
            "pretrain.optim.batch_size=16",
            "pretrain.optim.warmup_steps=2",
            "answer_finetune.epochs=1",
            "answer_finetune.validation_questions=5",
            "answer_evaluate.max_questions=20",
            "answer_optimize.enabled=false",
        ],
    )
    result = pipeline(config)
    assert result.tokenizer.trained and result.encoder is not None and result.encoder.global_step == 8
    assert result.model.base_model == result.encoder.uri  # the encoder pretrained here, no checkpoint
    assert result.model.pretrain_run_id == result.encoder.mlflow_run_id
    settings = json_.loads(next(Path(result.model.uri.removeprefix("file://")).glob("answers_meta.json")).read_text())
    assert settings["max_length"] == 64 and settings["stride"] == 16  # 256 asked, the encoder has 64 positions
    report = result.evaluation
    assert report.test_size == result.data.sizes["test"] and 0 <= report.model.f1 <= 1 and report.lexical.f1 > 0
    assert {r.name for r in result.verdict.rules} >= {"evaluation", "baseline", "champion", "min_f1"}
    assert result.verdict.passed == (not result.verdict.reasons)
