"""Data that is read is the data in the file (issue 22): quotes never merge rows or lose characters silently.

Each case writes the file byte for byte, runs the data stage, and compares every (text, label) that comes out
with what was written, or checks that the error names the line where the quote opened.
"""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import PipelineInputError
from core.workspace import Workspace
from tasks.data.loaders import load_splits
from tasks.data.prepare import DataConfig, prepare_data

LABELS = ["neg", "pos"]
QUOTED = [
    '" the movie " was fine',  # a quote at the start of a text, closed mid-text (issue 22's real line)
    '"unbalanced start of a review',  # a quote that never closes
    'he said "wow and left',  # an unbalanced quote inside
    '"""',  # nothing but quotes
    "it's 5' tall, 'quoted' too",
]


def _rows(n: int = 60) -> list[tuple[str, str]]:
    return [(f"plain review number {i} is {'good' if i % 2 else 'bad'}", LABELS[i % 2]) for i in range(n)]


def _with_quotes() -> list[tuple[str, str]]:
    rows = _rows()
    for i, text in enumerate(QUOTED):  # spread through the file, each in its own row
        rows.insert(5 + 9 * i, (text, LABELS[i % 2]))
    return rows


def _write(path, lines: list[str]) -> str:
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return str(path)


def _read_back(prepared) -> list[tuple[str, str]]:
    splits = load_splits(prepared)
    names = prepared.labels
    return [
        (t, names[y])
        for s in ("train", "validation", "test")
        for t, y in zip(splits[s]["text"], splits[s]["label"], strict=True)
    ]


def _cfg(source: str, **kw) -> DataConfig:
    return DataConfig(source=source, text_column="text", label_column="label", **kw)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(root=str(tmp_path / "ws"))


def test_tsv_quotes_are_characters_every_row_comes_through(tmp_path, ws):
    rows = _with_quotes()
    src = _write(tmp_path / "q.tsv", ["text\tlabel", *(f"{t}\t{y}" for t, y in rows)])
    prepared = prepare_data(_cfg(src), ws)
    assert sorted(_read_back(prepared)) == sorted(rows)  # every row, every character (quotes included)
    assert prepared.dropped == {}


def test_tsv_read_with_csv_quoting_stops_at_the_merge(tmp_path, ws):
    """What the old reader did silently: the quote at line 7 swallows rows until the next quote, at line 16."""
    rows = _rows()
    rows[5] = (QUOTED[1], "pos")  # line 7
    rows[14] = (QUOTED[2], "neg")  # line 16
    src = _write(tmp_path / "q.tsv", ["text\tlabel", *(f"{t}\t{y}" for t, y in rows)])
    with pytest.raises(PipelineInputError) as err:
        prepare_data(_cfg(src, quoting="csv"), ws)
    message = str(err.value)
    assert "q.tsv line 7, column 'text'" in message
    assert "a quote opened at line 7 closes only at line 16" in message
    assert "read as rows of their own (line 8: 'plain review number 6 is bad\\tneg')" in message


def test_csv_quotes_in_fields_come_through(tmp_path, ws):
    rows = [*_with_quotes(), ('a text, with "quotes", commas\nand a line break', "pos")]
    path = tmp_path / "q.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)  # RFC 4180 quoting
    assert sorted(_read_back(prepare_data(_cfg(str(path)), ws))) == sorted(rows)


def test_csv_quote_closed_rows_later_names_the_lines(tmp_path, ws):
    lines = ["text,label", *(f"{t},{y}" for t, y in _rows(40))]
    lines.insert(4, '"a review that opens a quote,pos')  # line 5
    lines.insert(12, 'and closes it here" it said,neg')  # line 13
    with pytest.raises(PipelineInputError) as err:
        prepare_data(_cfg(_write(tmp_path / "m.csv", lines)), ws)
    message = str(err.value)
    assert "m.csv line 5, column 'text': one text of" in message and "spans lines 5-13" in message
    assert "7 of its lines read as rows of their own (line 6: 'plain review number 3 is good,pos')" in message
    assert "a quote opened at line 5 closes only at line 13" in message


def test_csv_quote_never_closed_names_the_line(tmp_path, ws):
    lines = ["text,label", *(f"{t},{y}" for t, y in _rows(40))]
    lines.insert(9, '"this quote never closes,pos')  # line 10
    with pytest.raises(PipelineInputError, match=r"u\.csv line 10: a quote opened at line 10 is never closed"):
        prepare_data(_cfg(_write(tmp_path / "u.csv", lines)), ws)


def test_csv_long_multiline_text_without_rows_inside_is_stopped(tmp_path, ws):
    """Another column layout (label first) and no label-like lines: the length rule catches the merge."""
    rows = _rows(200)
    lines = ["label,text", *(f"{y},{t}" for t, y in rows)]
    lines.insert(3, 'pos,"' + "\n".join(["words " * 200] * 6) + '"')  # line 4, ~7,200 characters on 6 lines
    with pytest.raises(PipelineInputError) as err:
        prepare_data(_cfg(_write(tmp_path / "long.csv", lines)), ws)
    assert "long.csv line 4, column 'text': one text of 7,205 characters spans lines 4-9" in str(err.value)
    assert "its column's p99 is 31 characters" in str(err.value)


def test_csv_short_multiline_texts_are_kept(tmp_path, ws):
    rows = [*_rows(), ("first line\nsecond line, with a comma\nthird", "neg")]
    path = tmp_path / "ok.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    assert sorted(_read_back(prepare_data(_cfg(str(path)), ws))) == sorted(rows)


def test_tsv_separator_inside_a_text_names_the_line(tmp_path, ws):
    lines = ["text\tlabel", *(f"{t}\t{y}" for t, y in _rows())]
    lines[6] = "a text\twith a tab\tpos"
    with pytest.raises(
        PipelineInputError, match=r"t\.tsv line 7: 3 fields where the header has 2\. Read with data\.quoting=none"
    ):
        prepare_data(_cfg(_write(tmp_path / "t.tsv", lines)), ws)


def test_test_split_without_labels_is_refused_with_the_way_out(tmp_path, ws):
    """The competition layout: train.tsv (id, text, label) beside test.tsv (id, text)."""
    folder = tmp_path / "comp"
    folder.mkdir()
    rows = _rows(80)
    _write(folder / "train.tsv", ["id\ttext\tlabel", *(f"{i}\t{t}\t{y}" for i, (t, y) in enumerate(rows))])
    _write(folder / "test.tsv", ["id\ttext", *(f"{i}\tunseen text {i}" for i in range(20))])
    with pytest.raises(PipelineInputError) as err:
        prepare_data(_cfg(str(folder)), ws)
    message = str(err.value)
    assert "test.tsv: the test split has no label column 'label' (columns: ['id', 'text'])" in message
    assert "move or rename the file out of the folder (the test split is then carved from train)" in message
    _write(folder / "test.tsv", ["id\ttext\tlabel", *(f"{i}\tunseen text {i}\t-1" for i in range(20))])  # GLUE's way
    with pytest.raises(PipelineInputError, match=r"test\.tsv: the test split is unlabeled: column 'label' is '-1' in"):
        prepare_data(_cfg(str(folder)), ws)
    (folder / "test.tsv").rename(tmp_path / "test.tsv")  # the way out the messages give
    assert sum(prepare_data(_cfg(str(folder)), ws).sizes.values()) == 80


@pytest.mark.parametrize(
    ("source", "columns", "sizes"),
    [
        ("intents/banking77", ("text", "category"), {"train": 10_003, "test": 3_080}),  # quoted multi-line texts
        ("sms_spam.csv", ("message", "class"), {"all": 5_572}),
    ],
)
def test_real_files_read_whole_and_pass_the_merge_check(source, columns, sizes):
    """The shared public files (README counts) read to their published sizes and are not flagged."""
    from pathlib import Path

    from tasks.data.integrity import check_merged_rows
    from tasks.data.read import read_files

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / source
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    frames = read_files(str(path))
    assert {k: len(v) for k, v in frames.items()} == sizes
    labels = set(next(iter(frames.values()))[columns[1]])
    for frame in frames.values():
        check_merged_rows(frame, columns, labels)


def test_tsv_blank_lines_count_as_pandas_counts_them(tmp_path, ws):
    """Blank and space-only lines are skipped, a form feed is a (bad) row: the record check agrees with the
    reader, and the bad row is named by its physical line."""
    rows = _rows()
    lines = ["text\tlabel", *(f"{t}\t{y}" for t, y in rows)]
    lines[3:3] = ["", "   ", "\x0c"]  # lines 4-6; the form feed is line 6
    src = _write(tmp_path / "b.tsv", lines)
    with pytest.raises(PipelineInputError, match=r"b\.tsv, line 6, column 'text': empty or whitespace-only text"):
        prepare_data(_cfg(src), ws)
    prepared = prepare_data(_cfg(src, on_invalid="drop"), ws)
    assert sorted(_read_back(prepared)) == sorted(rows)
    assert prepared.dropped == {"empty or whitespace-only text": 1}


def test_a_reader_that_loses_a_tsv_row_is_caught(tmp_path):
    """The guard itself: read without quoting, records must equal the non-empty lines after the header."""
    from tasks.data.read import _check_record_count, read_file

    src = _write(tmp_path / "c.tsv", ["text\tlabel", "", *(f"{t}\t{y}" for t, y in _rows(10))])
    df = read_file(src)
    assert len(df) == 10
    with pytest.raises(PipelineInputError, match=r"c\.tsv: read 9 records from 10 non-empty lines after the header"):
        _check_record_count(src, df.iloc[:-1])


def test_csv_of_long_multiline_texts_is_not_flagged(tmp_path, ws):
    """Emails: every text spans lines and some run past the length floor; only a merge is an error."""
    rows = [
        (f"Dear team,\nmessage {i}\n" + "details of the matter " * (20 + (i % 7) * 60), LABELS[i % 2])
        for i in range(60)
    ]
    path = tmp_path / "mail.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    assert max(len(t) for t, _ in rows) > 5_000
    assert sorted(_read_back(prepare_data(_cfg(str(path)), ws))) == sorted(rows)
