"""A question answerer retrained (#26): newly labelled questions from a file (SQuAD JSON or JSONL, checked as the
data stage checks them) merged with the champion's splits into a train/dev/test folder, no context in two splits,
and the retrain settings that fine-tune the champion's checkpoint on it. Fast checks run in `make test`; the
retrain flow end to end (it trains twice) is marked `kinds`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.errors import PipelineInputError
from flows.config import load_config
from tests.test_answers_kind import ROOT, _article, _squad, tiny_encoder  # noqa: F401 (a fixture)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(articles: list[dict]) -> list[dict]:
    return [{**qa, "context": p["context"]} for art in articles for p in art["paragraphs"] for qa in p["qas"]]


@pytest.fixture
def champion(tmp_path):
    from core.workspace import Workspace
    from tasks.kinds.answers.prepare_stage import AnswerDataConfig, prepare_questions
    from tasks.results.registry import Champion

    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    data = prepare_questions(AnswerDataConfig(source=str(_squad(tmp_path / "qa.json", 60))), ws)
    model = str(tmp_path / "model")
    found = Champion(name="qa", alias="champion", version="1", run_id="r", data_uri=data.uri, checkpoint_uri="",
                     model_dir=model, data_fingerprint=data.fingerprint, labels=[], task="answers")  # fmt: skip
    return found, ws


def _old(champion) -> dict[str, list[dict]]:
    import datasets

    dd = datasets.load_from_disk(champion[0].data_uri + "/splits")
    return {s: dd[s].to_list() for s in ("train", "validation", "test")}


def test_new_questions_join_the_champions_splits_with_no_context_in_two(champion, tmp_path):
    from tasks.kinds.answers.prepare_stage import AnswerDataConfig, prepare_questions
    from tasks.monitoring.answer_retrain_data import write_answer_retrain_data
    from tasks.monitoring.windows import WindowSource

    found, ws = champion
    old = _old(champion)
    known = [{"id": f"k{i}", "question": r["question"], "context": r["context"],
              "answers": [{"text": r["answer_texts"][0], "answer_start": r["answer_starts"][0]}]}
             for i, r in enumerate(old["train"][:4])]  # fmt: skip
    test_context = old["test"][0]["context"]
    person = test_context.split(" ")[0]
    on_test = {"id": "t1", "question": f"who lives in the first place named , {person} ?", "context": test_context,
               "answers": [{"text": person, "answer_start": 0}]}  # fmt: skip
    rng = random.Random(5)
    fresh = _rows([_article(rng, a) for a in range(9)])  # ids a0-bob ... collide with the champion's
    new = _jsonl(tmp_path / "new.jsonl", known + [on_test] + fresh)

    data = write_answer_retrain_data(found, WindowSource(uri=str(new)), ws)
    assert data.dropped == {"already in the champion's data": 4} and sum(data.added.values()) == 28
    assert data.added["test"] >= 1 and min(data.added.values()) >= 1

    merged = prepare_questions(AnswerDataConfig(source=data.uri), ws)  # ids unique, or this refuses the folder
    from tasks.data.loaders import load_splits

    splits = load_splits(merged)
    for split, rows in old.items():
        assert merged.sizes[split] == len(rows) + data.added[split]
        assert {r["id"] for r in rows} <= set(splits[split]["id"])  # the champion's questions stay where they were
    contexts = {s: set(splits[s]["context"]) for s in old}
    assert not (contexts["train"] & contexts["test"] or contexts["train"] & contexts["validation"])
    assert not contexts["validation"] & contexts["test"] and test_context in contexts["test"]
    assert "t1" in set(splits["test"]["id"])  # asked on a test context: it joined the test split


def test_a_bad_or_useless_labelled_file_is_refused_naming_it(champion, tmp_path):
    from tasks.monitoring.answer_retrain_data import write_answer_retrain_data
    from tasks.monitoring.windows import WindowSource

    found, ws = champion
    row = {"id": "q1", "question": "where does bob live ?", "context": "bob lives in oslo .",
           "answers": [{"text": "oslo", "answer_start": 11}]}  # fmt: skip
    moved = _jsonl(tmp_path / "moved.jsonl", [row])
    with pytest.raises(PipelineInputError, match=r"moved.jsonl:1: question 'q1': answer 'oslo' is not at answer_start"):
        write_answer_retrain_data(found, WindowSource(uri=str(moved)), ws)
    no_question = _jsonl(tmp_path / "noq.jsonl", [{**row, "question": " ", "answers": []}])
    with pytest.raises(PipelineInputError, match=r"noq.jsonl:1: question 'q1': empty question"):
        write_answer_retrain_data(found, WindowSource(uri=str(no_question)), ws)
    with pytest.raises(PipelineInputError, match="needs labelled questions: new_data.uri"):
        write_answer_retrain_data(found, WindowSource(), ws)
    r = _old(champion)["train"][0]
    same = {"id": "x", "question": r["question"], "context": r["context"],
            "answers": [{"text": r["answer_texts"][0], "answer_start": r["answer_starts"][0]}]}  # fmt: skip
    with pytest.raises(PipelineInputError, match="no question that the champion's data does not already hold"):
        write_answer_retrain_data(found, WindowSource(uri=str(_jsonl(tmp_path / "same.jsonl", [same]))), ws)


def test_the_retrain_config_fine_tunes_the_champions_checkpoint_on_the_merged_folder(champion, tmp_path):
    from flows.retrain import retrain_config
    from tasks.results.data import RetrainData

    found, _ = champion
    base = load_config(ROOT / "configs" / "qa.yaml", [f"workspace.root={tmp_path / 'ws'}"])
    data = RetrainData(uri=str(tmp_path / "merged"), added={"train": 3}, dropped={}, labels=[])
    config = retrain_config(base, found, data, repretrain=False)
    assert config.task == "answers" and config.answer_data.source == data.uri
    assert config.answer_data.max_train_questions is None and config.answer_data.offsets == "repair"
    assert config.answer_finetune.base_model == found.model_dir and not config.pretrain.enabled
    checkpoint = found.model_copy(update={"checkpoint_uri": str(tmp_path / "checkpoint")})
    assert retrain_config(base, checkpoint, data, False).answer_finetune.base_model == str(tmp_path / "checkpoint")
    again = retrain_config(base, found, data, repretrain=True)  # the from-scratch path: a new tokenizer and encoder
    assert again.pretrain.enabled and again.answer_finetune.base_model is None
    assert again.tokenizer_for_run().pretrained is None


@pytest.mark.kinds
def test_a_question_answerer_is_retrained_on_new_labelled_questions(tmp_path, tiny_encoder, prefect_server):  # noqa: F811
    from flows.pipeline import pipeline
    from flows.retrain import retrain
    from tasks.monitoring.windows import WindowSource

    config = load_config(
        ROOT / "configs" / "qa.yaml",
        [
            f"workspace.root={tmp_path / 'ws'}",
            f"answer_data.source={_squad(tmp_path / 'qa.json', 40)}",
            "answer_data.max_train_questions=null",
            f"answer_finetune.base_model={tiny_encoder}",
            "answer_finetune.epochs=2",
            "answer_finetune.max_length=64",
            "answer_finetune.doc_stride=16",
            "answer_finetune.validation_questions=6",
            "answer_finetune.optim.learning_rate=0.005",
            "answer_evaluate.floor_questions=3",
            "answer_evaluate.max_questions=12",
            "answer_optimize.max_questions=6",
        ],
    )
    result = pipeline(config)
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace

    client = Tracking.resolve(TrackingConfig(), Workspace(root=str(tmp_path / "ws")).resolved()).client()
    client.set_registered_model_alias(result.registered.name, "champion", result.registered.version)
    rng = random.Random(11)
    labelled = _jsonl(tmp_path / "new.jsonl", _rows([_article(rng, 500 + a) for a in range(6)]))
    again = retrain(result.registered.name, new_data=WindowSource(uri=str(labelled)), pipeline_config=config)
    assert again.new_version != result.registered.version and sum(again.data.added.values()) == 18
    assert again.pipeline.task == "answers" and again.pipeline.model.base_model == result.model.uri
    assert again.pipeline.data.sizes["train"] == result.data.sizes["train"] + again.data.added["train"]
