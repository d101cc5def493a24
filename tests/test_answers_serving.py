"""A question answerer served (#26): `POST /predict` takes {question, context} pairs and answers each with the text,
its character offsets, a score or "no answer", as the registered pyfunc does; bad pairs are a 422 naming the pair
and the field; the answers are journaled into the prediction log with their contexts, which the monitor reads back.

The model is a tiny random span reader registered as the answers kind registers one (no training: serving is what
is tested here, and any span it picks must still be a span of its context).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.test_answers_kind import NAMES, PLACES, tiny_encoder  # noqa: F401 (a fixture)

LONG = " ".join(f"{n} lives in {p} ." for n, p in zip(NAMES * 4, PLACES * 5, strict=False))  # ~5 windows of 32


def reader_folder(encoder: Path, folder: Path) -> Path:
    """A span reader as the finetune stage saves one: QA weights (random, seeded), tokenizer, window settings."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForQuestionAnswering

    from models.span_reader import META, ReaderSettings

    torch.manual_seed(0)  # the encoder fixture is drawn unseeded: all weights are drawn here, the same every run
    BertForQuestionAnswering(AutoConfig.from_pretrained(str(encoder))).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(encoder)).save_pretrained(str(folder))
    settings = ReaderSettings(max_length=32, stride=8, max_question_tokens=8, max_answer_tokens=5)
    (folder / META).write_text(settings.model_dump_json())
    return folder


def register_reader(folder: Path, ws: Path, name: str = "qa") -> str:
    """Logged and registered as `tasks/kinds/answers/register_stage.py` does (models from code), alias champion."""
    import mlflow

    import models
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from tasks.registry.code_pyfunc import requirements

    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(ws)).resolved())
    tracking.activate()
    code = Path(models.__file__).parent / "answers_pyfunc.py"
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(code), artifacts={"model": str(folder)}, code_paths=[str(code.parent)],
            pip_requirements=requirements(onnx=False),
        )  # fmt: skip
    version = mlflow.register_model(info.model_uri, name).version
    tracking.client().set_registered_model_alias(name, "champion", version)
    return str(version)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_encoder):  # noqa: F811
    root = tmp_path_factory.mktemp("answers-serving")
    folder = reader_folder(tiny_encoder, root / "reader")
    return root / "ws", register_reader(folder, root / "ws")


def test_predict_answers_pairs_as_the_pyfunc_does_and_logs_them_with_their_contexts(served):
    import mlflow

    from core.prediction_log import log_uri, read_window
    from core.workspace import Workspace
    from tasks.monitoring.answer_detect import window_pairs
    from tests.test_serving import Server, _cfg

    ws, version = served
    pairs = [
        {"question": "where does bob live ?", "context": "bob lives in oslo . we met today ."},
        {"question": "where does erin live ?", "context": LONG},
    ]
    with Server(_cfg(ws, model_name="qa", follow_events=False, log_flush_seconds=0.2)) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"pairs": pairs}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        ready = httpx.get(f"{srv.url}/ready").json()
    assert body["model_version"] == version and len(body["answers"]) == 2 and ready["ready"]
    for pair, a in zip(pairs, body["answers"], strict=True):
        assert set(a) == {"answer", "start", "end", "score", "no_answer"} and 0 <= a["score"] <= 1
        assert a["no_answer"] or pair["context"][a["start"] : a["end"]] == a["answer"]

    served_pyfunc = mlflow.pyfunc.load_model(f"models:/qa/{version}").predict(pairs)
    assert [a["answer"] for a in body["answers"]] == [a or None for a in served_pyfunc["answer"]]
    assert [a["score"] for a in body["answers"]] == pytest.approx(list(served_pyfunc["score"]), abs=1e-5)

    # Journaled before the answer was sent, moved into the log at shutdown: question, answer, score and context.
    rows = read_window(log_uri(Workspace(root=str(ws)).resolved()))
    assert list(rows["text"]) == [p["question"] for p in pairs]
    assert list(rows["label"]) == [a["answer"] or "" for a in body["answers"]]
    assert [json.loads(p)["context"] for p in rows["probs"]] == [p["context"] for p in pairs]
    read_back, no_context = window_pairs(rows)  # what the drift monitor reads from the log
    assert no_context == 0 and read_back.to_dict("records") == pairs


def test_bad_pairs_are_refused_naming_the_pair_and_the_field(served):
    from tests.test_serving import Server, _cfg

    ws, _ = served
    good = {"question": "where does bob live ?", "context": "bob lives in oslo ."}
    with Server(_cfg(ws, model_name="qa", follow_events=False, max_texts=3)) as srv:
        post = lambda body: httpx.post(f"{srv.url}/predict", json=body, timeout=60)  # noqa: E731
        empty = post({"pairs": [good, {"question": "  ", "context": "x"}, {"question": "q", "context": ""}]})
        assert empty.status_code == 422 and "pairs[1].question, pairs[2].context" in empty.text, empty.text
        missing = post({"pairs": [good, {"question": "where ?"}]})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "pairs", 1, "context"]
        both = post({"pairs": [good], "texts": ["hello"]})
        assert both.status_code == 422 and "send either" in both.text
        texts = post({"texts": ["where does bob live ?"]})
        assert texts.status_code == 400 and "is a question answerer: send" in texts.json()["detail"]
        assert post({"pairs": []}).status_code == 400
        assert post({"pairs": [good] * 4}).status_code == 413


def test_pairs_sent_to_a_classifier_are_refused_before_compute():
    import asyncio

    from fastapi import HTTPException

    from serving.answers_api import AnswersAPI, Pair
    from serving.config import ServeConfig
    from serving.model_holder import LoadedModel

    class Holder:
        current = LoadedModel("clf", "3", classifier=object())

    api = AnswersAPI(ServeConfig(), Holder(), journal=None, metrics=None)
    with pytest.raises(HTTPException, match=r'clf v3 is a classifier: send \{"texts": \[...\]\}'):
        asyncio.run(api.predict([Pair(question="q", context="c")]))
