"""The from-scratch path of the entities and answers kinds (#26): the classifier's tokenizer and pretrain stages on
each kind's own text, a fast tokenizer with offsets (answers' windows) and word ids (entities' first sub-tokens),
Chinese covered character by character. Fast checks (`make test`); the flow end to end is in the kinds' test files,
marked `kinds`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.workspace import Workspace
from tasks.data.loaders import load_corpus, load_splits, load_tokenizer
from tasks.training.tokenizer import TokenizerConfig

# Short CMRC-like paragraphs; the question words 谁/哪 appear in no context: the vocabulary must still hold them.
PEOPLE = ["张三", "李四", "王五", "赵六", "孙七", "周八"]
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都"]


def _cmrc(path: Path, articles: int = 30) -> Path:
    data = []
    for a in range(articles):
        person, city = PEOPLE[a % 6], CITIES[(a * 5) % 6]
        context = f"{person}住在{city}。他每天早上去公园散步，然后回家吃饭。{person}喜欢读书和写字。"
        qas = [
            {"id": f"q{a}", "question": f"{person}住在哪里？", "answers": [{"text": city, "answer_start": 4}]},
            {"id": f"p{a}", "question": f"谁住在{city}？", "answers": [{"text": person, "answer_start": 0}]},
        ]
        data.append({"title": f"t{a}", "paragraphs": [{"id": f"P{a}", "context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "v1.0", "data": data}, ensure_ascii=False))
    return path


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(root=str(tmp_path / "ws")).resolved()


def test_entity_sentences_train_a_fast_cased_tokenizer_whose_word_ids_the_tagger_reads(tmp_path, ws):
    from tasks.kinds.entities.prepare import EntityDataConfig, prepare_entities
    from tasks.kinds.entities.pretraining import pretraining_text
    from tasks.kinds.registry import kind
    from tests.test_entities_kind import _folder

    data = prepare_entities(EntityDataConfig(source=str(_folder(tmp_path))), ws)
    cfg = TokenizerConfig(vocab_size=80, min_frequency=1, lowercase=False)
    artifact = kind("entities").tokenizer(cfg, data, ws)
    tok = load_tokenizer(artifact)
    assert tok.is_fast and artifact.trained  # offsets and word ids come from the Rust tokenizer only
    enc = tok(["Bob", "went", "home", "Paris"], is_split_into_words=True)
    inner = enc.word_ids()[1:-1]  # [CLS] ... [SEP]: each sub-token names its word, the tagger labels the first
    assert inner == sorted(inner) and set(inner) == {0, 1, 2, 3} and "Bob" in tok.get_vocab()  # case kept

    view = pretraining_text(data, ws)
    assert load_corpus(view)["text"] == load_splits(data)["train"]["text"]  # the training sentences, words joined
    held_out = load_splits(view)["validation"]
    assert held_out["text"] == load_splits(data)["validation"]["text"]
    assert held_out.column_names == ["text"]  # no dummy labels: the pretrain stage drops whatever columns it finds
    assert pretraining_text(data, ws).uri == view.uri  # written once, reused


def test_the_answers_tokenizer_covers_chinese_contexts_and_questions_and_pieces_fit_the_encoder(tmp_path, ws):
    from tasks.kinds.answers.prepare_stage import AnswerDataConfig, prepare_questions
    from tasks.kinds.answers.pretraining import pretraining_text
    from tasks.kinds.registry import kind

    data = prepare_questions(AnswerDataConfig(source=str(_cmrc(tmp_path / "cmrc.json"))), ws)
    assert data.scoring == "cmrc"
    artifact = kind("answers").tokenizer(TokenizerConfig(vocab_size=200, min_frequency=1), data, ws)
    tok = load_tokenizer(artifact)
    assert tok.is_fast
    question = "谁住在上海？"
    enc = tok(question, return_offsets_mapping=True, add_special_tokens=False)
    assert tok.unk_token_id not in enc["input_ids"]  # 谁 is in the questions only: they are in the corpus
    assert [question[s:e] for s, e in enc["offset_mapping"]] == list(question)  # one ideograph, one token

    view = pretraining_text(data, artifact, 16, ws)
    corpus = load_corpus(view)["text"]
    assert all(len(tok(t)["input_ids"]) <= 16 for t in corpus)  # specials included: the encoder's positions
    contexts = dict.fromkeys(load_splits(data)["train"]["context"])
    assert "".join(t for t in corpus if "？" not in t) == "".join(contexts)  # every context, whole, cut in pieces
    assert set(load_splits(data)["train"]["question"]) <= set(corpus)
    assert len(load_splits(view)["validation"]) > 0


def test_answer_windows_shrink_to_an_encoder_with_fewer_positions():
    from tasks.kinds.answers.finetune_stage import AnswerFinetuneConfig, fit_windows

    cfg = AnswerFinetuneConfig()
    assert (fit_windows(cfg, 512).max_length, fit_windows(cfg, 512).stride) == (384, 128)  # as set
    short = fit_windows(cfg, 64)
    assert (short.max_length, short.stride, short.max_question_tokens) == (64, 16, 16)
