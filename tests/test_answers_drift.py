"""A question answerer watched (#26): question, context and answer length, no-answer rate and confidence of the
champion's answers on a window against its answers to its held-out questions, one Evidently test per descriptor,
through `ModelKind.detect_drift` as `zero2one monitor` asks it. Windows come as files (question + context columns) or
as the prediction log the service writes (the context logged with each answer).

The champion is a tiny random span reader on prepared synthetic questions: no training, the descriptors are what is
tested (a window like the reference stays calm, longer questions on longer contexts fire the input signals).
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from core.errors import PipelineInputError
from tests.test_answers_kind import NAMES, PLACES, _article, _squad, tiny_encoder  # noqa: F401 (a fixture)
from tests.test_answers_serving import reader_folder


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tiny_encoder):  # noqa: F811
    from core.workspace import Workspace
    from tasks.kinds.answers.prepare_stage import AnswerDataConfig, prepare_questions
    from tasks.results import Champion

    root = tmp_path_factory.mktemp("answers-drift")
    ws = Workspace(root=str(root / "ws")).resolved()
    data = prepare_questions(AnswerDataConfig(source=str(_squad(root / "qa.json", 120))), ws)
    folder = reader_folder(tiny_encoder, root / "reader")
    found = Champion(name="qa", alias="champion", version="1", run_id="r", data_uri=data.uri, checkpoint_uri="",
                     model_dir=str(folder), data_fingerprint=data.fingerprint, labels=[], task="answers")  # fmt: skip
    return found, ws


def _window(articles: int, seed: int) -> pd.DataFrame:
    """Questions like the champion's (same generator, other articles), as a window file's columns."""
    rng = random.Random(seed)
    rows = [(qa["question"], p["context"]) for a in range(articles)
            for p in _article(rng, 1000 + a)["paragraphs"] for qa in p["qas"]]  # fmt: skip
    return pd.DataFrame(rows, columns=["text", "context"])


def _drift(champion, window: pd.DataFrame, out):
    from tasks.kinds.registry import kind
    from tasks.monitoring.config import MonitorConfig
    from tasks.monitoring.policy import DriftPolicy
    from tasks.monitoring.reports import ReportAbout

    found, ws = champion
    cfg = MonitorConfig(policy=DriftPolicy(min_rows=20))
    return kind("answers").detect_drift(cfg, found, window, out, ReportAbout(model_name="qa"), ws)


def test_a_window_like_the_reference_is_calm_and_longer_questions_on_longer_contexts_fire(champion, tmp_path):
    calm = _drift(champion, _window(20, 7), tmp_path / "calm")
    assert {s.name for s in calm.signals} == {"question_chars", "context_chars", "answer_chars", "no_answer",
                                              "confidence"}  # fmt: skip
    # Inputs alike: no input signal fires (context length counted once per context: 3 questions share each here).
    assert calm.status == "no_drift" and not {"question_chars", "context_chars"} & {s.name for s in calm.fired}
    assert calm.samples["current_model"] == 60 and calm.samples["current_contexts"] == 20
    assert (tmp_path / "calm" / "model.html").exists() and (tmp_path / "calm" / "contexts.html").exists()

    rng = random.Random(3)
    rows = [(f"could you please tell me in which city {rng.choice(NAMES)} has been living ?",
             " ".join(f"{n} lives in {rng.choice(PLACES)} with friends ." for n in rng.sample(NAMES * 3, 12)))
            for _ in range(40)]  # fmt: skip
    shifted = pd.DataFrame(rows, columns=["text", "context"])
    moved = _drift(champion, shifted, tmp_path / "moved")
    assert {"question_chars", "context_chars"} <= {s.name for s in moved.fired} and moved.status == "drift"
    assert {s.group for s in moved.signals if s.name.endswith("_chars") and s.name != "answer_chars"} == {"inputs"}


def test_the_prediction_log_window_reads_the_logged_contexts(champion, tmp_path):
    window = _window(20, 7)
    logged = [json.dumps({"context": c, "start": None, "end": None, "no_answer": True}) for c in window["context"]]
    as_logged = pd.DataFrame({"text": window["text"], "label": "", "score": 0.5, "probs": logged})
    from_log, from_file = _drift(champion, as_logged, tmp_path / "log"), _drift(champion, window, tmp_path / "file")
    assert [s.score for s in from_log.signals] == pytest.approx([s.score for s in from_file.signals])

    as_logged.loc[:4, "probs"] = "{}"  # rows a service logged before contexts were: counted, not read
    partial = _drift(champion, as_logged, tmp_path / "partial")
    assert partial.samples["current_model"] == 55 and any("5 sampled window rows" in s for s in partial.skipped)
    with pytest.raises(PipelineInputError, match="none of the window's 60 rows has a question and a context"):
        _drift(champion, window[["text"]], tmp_path / "none")
    assert _drift(champion, window.head(5), tmp_path / "small").status == "insufficient_data"
