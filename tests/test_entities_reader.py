"""Entity data reading (#26): CoNLL and JSONL in, IOB2 sentences out; every bad input one line naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.kinds.entities.reader import EntityDataError, ReaderConfig, read_entities, read_folder
from tasks.kinds.entities.spans import spans_to_words

WNUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner" / "wnut17"


def _write(tmp_path: Path, text: str, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_whitespace_only_lines_end_sentences_as_empty_lines_do(tmp_path):
    path = _write(tmp_path, "Empire\tB-location\nState\tI-location\n\t\nhi\tO\n\nthere\tO\n  \nBob\tB-person\n")
    data = read_entities(path)
    assert [s.words for s in data.sentences] == [["Empire", "State"], ["hi"], ["there"], ["Bob"]]
    assert data.sentences[1].source == f"{path}:4"


@pytest.mark.skipif(not WNUT.is_dir(), reason="shared WNUT-17 copy not present")
def test_the_shared_wnut17_files_read_to_their_published_sentence_counts():
    """train.conll separates 2,394 of its 3,394 sentences with a tab-only line, the rest with an empty one."""
    data = read_folder(WNUT)
    assert {k: len(v.sentences) for k, v in data.items()} == {"train": 3394, "dev": 1009, "test": 1287}
    assert data["train"].source_scheme == "IOB2"
    assert len(data["train"].types) == 6


def test_conll_2003_columns_and_docstart_are_read_token_first_tag_last(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    data = read_entities(_write(tmp_path, text))
    assert [(s.words, s.tags) for s in data.sentences] == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]


@pytest.mark.parametrize(
    ("tags", "scheme", "iob2"),
    [
        (["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"], "BIOES", ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC"]),
        (["B-PER", "M-PER", "E-PER", "S-LOC"], "BMES", ["B-PER", "I-PER", "I-PER", "B-LOC"]),
        (["I-PER", "I-PER", "B-PER", "O"], "IOB1", ["B-PER", "I-PER", "B-PER", "O"]),
    ],
)
def test_tag_schemes_become_iob2_and_the_source_scheme_is_recorded(tmp_path, tags, scheme, iob2):
    text = "".join(f"w{i} {t}\n" for i, t in enumerate(tags))
    data = read_entities(_write(tmp_path, text), ReaderConfig(scheme="IOB1" if scheme == "IOB1" else "auto"))
    assert data.sentences[0].tags == iob2
    assert data.source_scheme == scheme


def test_an_orphan_inside_tag_is_repaired_by_default_and_refused_when_asked(tmp_path):
    path = _write(tmp_path, "a\tO\nb\tI-person\nc\tI-person\n")
    assert read_entities(path).sentences[0].tags == ["O", "B-person", "I-person"]
    with pytest.raises(EntityDataError, match=rf"^{path}:2: 'I-person' follows 'O'"):
        read_entities(path, ReaderConfig(repair_orphan_inside=False))


def test_an_inside_tag_of_another_type_is_an_orphan_too(tmp_path):
    path = _write(tmp_path, "a\tB-group\nb\tI-person\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:2: 'I-person' follows 'B-group'"):
        read_entities(path, ReaderConfig(repair_orphan_inside=False))


def test_a_tag_of_an_undeclared_type_is_refused_with_file_line_and_value(tmp_path):
    path = _write(tmp_path, "a\tO\n\nb\tB-person\nc\tB-planet\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:4: tag 'B-planet' has type 'planet'"):
        read_entities(path, ReaderConfig(types=["person"]))


@pytest.mark.parametrize("bad", ["B_person", "X-person", "B-"])
def test_a_malformed_tag_is_refused(tmp_path, bad):
    path = _write(tmp_path, f"a\tO\nb\t{bad}\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:2: .*{bad!r}"):
        read_entities(path)


def test_a_line_without_a_separator_is_refused(tmp_path):
    path = _write(tmp_path, "a\tO\nlonely\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:2: expected 'token<TAB or space>tag', got 'lonely'$"):
        read_entities(path)


def test_an_empty_sentence_is_refused_unless_allowed_but_trailing_blank_lines_are_fine(tmp_path):
    path = _write(tmp_path, "a\tO\n\n\t\nb\tO\n\n\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:3: empty sentence"):
        read_entities(path)
    assert len(read_entities(path, ReaderConfig(skip_empty_sentences=True)).sentences) == 2
    assert len(read_entities(_write(tmp_path, "a\tO\n\n\n", "tail.conll")).sentences) == 1


def test_an_empty_file_is_refused(tmp_path):
    path = _write(tmp_path, "\n\n")
    with pytest.raises(EntityDataError, match=rf"^{path}:1: no sentences"):
        read_entities(path)


def test_jsonl_spans_become_words_with_offsets_and_iob2_tags(tmp_path):
    rows = [{"text": "Obama's visit to New York.", "spans": [{"start": 0, "end": 5, "label": "person"},
                                                         {"start": 17, "end": 25, "label": "location"}]}]  # fmt: skip
    data = read_entities(_write(tmp_path, "\n".join(json.dumps(r) for r in rows), "d.jsonl"))
    s = data.sentences[0]
    assert list(zip(s.words, s.tags, strict=True))[:5] == [
        ("Obama", "B-person"), ("'s", "O"), ("visit", "O"), ("to", "O"), ("New", "B-location")
    ]  # fmt: skip
    assert s.offsets[5] == (21, 25) and s.tags[5] == "I-location"


def test_a_span_inside_a_word_splits_the_word_rather_than_losing_the_entity():
    words, _, tags = spans_to_words("#Obama2024", [{"start": 1, "end": 6, "label": "person"}])
    assert list(zip(words, tags, strict=True)) == [("#", "O"), ("Obama", "B-person"), ("2024", "O")]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "hi", "spans": [{"start": 1, "end": 9, "label": "person"}]}, "lies outside its text of 2"),
        ({"text": "café", "spans": []}, None),
        ({"text": "cafe\u0301 x", "spans": [{"start": 0, "end": 4, "label": "place"}]}, "cuts a character at offset 4"),
        ({"text": "   ", "spans": []}, "empty sentence"),
        ({"text": "a b", "spans": [{"start": 0, "end": 3, "label": "x"}, {"start": 2, "end": 3, "label": "y"}]},
         "overlaps"),
    ],
)  # fmt: skip
def test_bad_jsonl_rows_are_refused_naming_file_and_line(tmp_path, row, message):
    path = _write(tmp_path, json.dumps({"text": "fine", "spans": []}) + "\n" + json.dumps(row) + "\n", "d.jsonl")
    if message is None:
        assert len(read_entities(path).sentences) == 2
        return
    with pytest.raises(EntityDataError, match=rf"^{path}:2: .*{message}"):
        read_entities(path)


def test_a_folder_reads_its_train_dev_test_files_by_name(tmp_path):
    for name in ("train.conll", "valid.txt", "test.conll"):
        _write(tmp_path, "a\tB-x\n", name)
    assert sorted(read_folder(tmp_path)) == ["dev", "test", "train"]
    (tmp_path / "train.conll").unlink()
    with pytest.raises(EntityDataError, match="no train file"):
        read_folder(tmp_path)
