"""The QA reader: SQuAD v1.1/v2.0 and JSONL read alike, and every bad row is one line naming where and what."""

import json

import pytest

from tasks.kinds.answers.reader import QADataError, read_qa

CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889."


def _squad(tmp_path, qas, context=CONTEXT, name="d.json"):
    path = tmp_path / name
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]})
    )
    return path


def _qa(qid="q1", question="Where is it?", text="Paris", start=23, **extra):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}], **extra}


def test_squad_v1_and_v2_read(tmp_path):
    impossible = {"id": "q2", "question": "Who painted it?", "answers": [], "is_impossible": True}
    examples = read_qa(_squad(tmp_path, [_qa(), impossible]))
    assert [ex.id for ex in examples] == ["q1", "q2"]
    assert examples[0].answers[0].text == "Paris" and not examples[0].is_impossible
    assert examples[1].is_impossible and examples[1].answers == ()
    assert examples[0].doc_id == "T"


def test_jsonl_reads_hf_style_answers(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"context": CONTEXT, "question": "When?", "answers": {"text": ["1889"], "answer_start": [49]}}
    path.write_text(json.dumps(row) + "\n\n")
    (example,) = read_qa(path)
    assert example.answers[0].start == 49 and example.id == "line1"


def test_jsonl_empty_answer_lists_mean_no_answer(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"context": CONTEXT, "question": "Who?", "answers": {"text": [], "answer_start": []}}))
    (example,) = read_qa(path)
    assert example.is_impossible


def test_misplaced_answer_names_question_and_both_strings(tmp_path):
    with pytest.raises(QADataError) as err:
        read_qa(_squad(tmp_path, [_qa(qid="q7", start=22)]))
    message = str(err.value)
    assert "\n" not in message and "'q7'" in message and "'Paris'" in message and "' Pari'" in message
    assert "answer_start 22" in message and "d.json" in message


def test_empty_question_is_refused(tmp_path):
    with pytest.raises(QADataError, match=r"question 'q1': empty question"):
        read_qa(_squad(tmp_path, [_qa(question="   ")]))


def test_missing_context_is_refused_with_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = {"context": CONTEXT, "question": "Where?", "answers": {"text": ["Paris"], "answer_start": [23]}}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"question": "Where?", "answers": []}) + "\n")
    with pytest.raises(QADataError, match=r"d\.jsonl:2: question 'line2': context missing"):
        read_qa(path)


def test_unanswered_question_not_marked_impossible_is_refused(tmp_path):
    with pytest.raises(QADataError, match="no answers and not marked is_impossible"):
        read_qa(_squad(tmp_path, [{"id": "q1", "question": "Where?", "answers": []}]))


def test_repair_moves_near_offsets_and_keeps_unlocated_as_text_only(tmp_path):
    notes = []
    qas = [_qa(start=22), _qa(qid="q2", text="in the French capital", start=10)]
    first, second = read_qa(_squad(tmp_path, qas), offsets="repair", notes=notes)
    assert first.answers[0].start == 23
    assert second.answers[0].start == -1  # scored by text, never trained on
    assert len(notes) == 2 and "22 -> 23" in notes[0]


def test_not_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  oops]}')
    with pytest.raises(QADataError, match=r"bad\.json:2: not valid JSON"):
        read_qa(path)
