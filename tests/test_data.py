"""prepare_data: every kind of bad input stops early with an error naming file, line, column and value."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.errors import PipelineInputError
from core.workspace import Workspace
from tasks.data.loaders import load_corpus, load_splits
from tasks.data.prepare import DataConfig, prepare_data

LABELS = ["neg", "pos"]


def _rows(n: int = 60) -> list[dict]:
    return [{"body": f"text number {i} is {'good' if i % 2 else 'bad'}", "tag": LABELS[i % 2]} for i in range(n)]


def _csv(path, rows) -> str:
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _cfg(source: str, **kw) -> DataConfig:
    return DataConfig(source=source, text_column="body", label_column="tag", corpus=None, **kw)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(root=str(tmp_path / "ws"))


def test_splits_are_stratified_deterministic_and_fingerprinted(tmp_path, ws):
    src = _csv(tmp_path / "d.csv", _rows(100))
    a = prepare_data(_cfg(src), ws)
    b = prepare_data(_cfg(src), ws)
    assert a.fingerprint == b.fingerprint and a.uri.endswith(a.fingerprint)
    assert sum(a.sizes.values()) == 100 and a.labels == LABELS
    splits = load_splits(a)
    for name in ("train", "validation", "test"):
        counts = pd.Series(splits[name]["label"]).value_counts()
        assert abs(counts[0] - counts[1]) <= 1, name  # stratified: both classes evenly represented
    texts = [set(splits[s]["text"]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2])
    assert load_corpus(a)["text"] == splits["train"]["text"]  # no corpus given: train texts
    c = prepare_data(_cfg(src, split={"seed": 7}), ws)
    assert c.fingerprint != a.fingerprint


def test_missing_column_names_the_columns(tmp_path, ws):
    src = _csv(tmp_path / "d.csv", _rows())
    with pytest.raises(PipelineInputError, match=r"d\.csv: column 'text' not found \(columns: \['body', 'tag'\]\)"):
        prepare_data(DataConfig(source=src, corpus=None, text_column="text", label_column="tag"), ws)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"body": "   ", "tag": "neg"}, r"line 5, column 'body': empty or whitespace-only text"),
        ({"body": "fine text", "tag": ""}, r"line 5, column 'tag': missing label"),
        (
            {"body": "fine text", "tag": "postive"},
            r"line 5, column 'tag': label not one of \['neg', 'pos'\] \(value 'postive'",
        ),
    ],
)
def test_bad_rows_name_file_line_column_and_value(tmp_path, ws, row, expected):
    rows = _rows()
    rows.insert(3, row)  # data row 4 -> line 5 (the header is line 1)
    src = _csv(tmp_path / "bad.csv", rows)
    with pytest.raises(PipelineInputError, match=r"bad\.csv, " + expected):
        prepare_data(_cfg(src, labels=LABELS), ws)
    assert not (tmp_path / "ws" / "data").exists()  # nothing written


def test_drop_policy_counts_what_it_dropped(tmp_path, ws):
    rows = [
        *_rows(),
        {"body": "", "tag": "neg"},
        {"body": "x", "tag": "maybe"},
        {"body": "text number 0 is bad", "tag": "neg"},
    ]
    prepared = prepare_data(_cfg(_csv(tmp_path / "d.csv", rows), labels=LABELS, on_invalid="drop"), ws)
    assert prepared.dropped == {
        "empty or whitespace-only text": 1,
        "label not one of ['neg', 'pos']": 1,
        "duplicate texts (kept first)": 1,
    }
    assert sum(prepared.sizes.values()) == 60


def test_undecodable_bytes_name_the_line(tmp_path, ws):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"body,tag\nok text,neg\nalso ok,pos\ncaf\xe9 au lait,pos\n")
    with pytest.raises(PipelineInputError, match=r"latin1\.csv: undecodable bytes at line 4 .*not valid UTF-8"):
        prepare_data(_cfg(str(path)), ws)


def test_duplicates_across_given_splits(tmp_path, ws):
    folder = tmp_path / "splits"
    folder.mkdir()
    rows = _rows(90)
    _csv(folder / "train.csv", rows[:60])
    _csv(folder / "validation.csv", rows[60:75])
    _csv(folder / "test.csv", [*rows[75:], rows[10]])  # a train text leaks into test
    with pytest.raises(PipelineInputError, match=r"train\.csv line 12 \(train\) and in .*test\.csv line 17 \(test\)"):
        prepare_data(_cfg(str(folder)), ws)
    prepared = prepare_data(_cfg(str(folder), on_invalid="drop"), ws)
    assert prepared.sizes == {"train": 59, "validation": 15, "test": 16}  # the given test set is kept whole
    assert prepared.dropped == {"texts also in test (dropped from train)": 1}


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet", "tsv"])
def test_other_formats(tmp_path, ws, suffix):
    """Every text and label comes through exactly, quotes, commas and non-ASCII text included."""
    rows = _rows()
    for i, text in enumerate(['"quoted" at the start', "a, comma", "it's", "café 好 👍", 'say "hi" twice""']):
        rows[10 + i]["body"] = text
    df = pd.DataFrame(rows)
    path = tmp_path / f"d.{suffix}"
    if suffix == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")))
    elif suffix == "parquet":
        df.to_parquet(path)
    elif suffix == "csv":
        df.to_csv(path, index=False)
    else:  # TSV is written as GLUE writes it: no quoting, a quote is a character
        path.write_text("body\ttag\n" + "".join(f"{r['body']}\t{r['tag']}\n" for r in rows))
    splits = load_splits(prepare_data(_cfg(str(path)), ws))
    read = [
        (t, LABELS[y])
        for s in ("train", "validation", "test")
        for t, y in zip(splits[s]["text"], splits[s]["label"], strict=True)
    ]
    assert sorted(read) == sorted((r["body"], r["tag"]) for r in rows)


def test_missing_json_label_is_caught(tmp_path, ws):
    rows = _rows()
    rows[7] = {"body": "no label here"}
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(PipelineInputError, match=r"d\.jsonl, line 8, column 'tag': missing label"):
        prepare_data(_cfg(str(path)), ws)


def test_corpus_never_contains_evaluation_texts(tmp_path, ws):
    src = _csv(tmp_path / "d.csv", _rows(100))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(r["body"] for r in _rows(100)) + "\nan extra sentence\n\n")
    prepared = prepare_data(_cfg(src).model_copy(update={"corpus": str(corpus)}), ws)
    held_out = prepared.sizes["validation"] + prepared.sizes["test"]
    assert prepared.corpus_size == 101 - held_out
    assert prepared.dropped["corpus texts equal to an evaluation text"] == held_out


def test_missing_source_and_single_label(tmp_path, ws):
    with pytest.raises(PipelineInputError, match="does not exist"):
        prepare_data(_cfg(str(tmp_path / "nope.csv")), ws)
    src = _csv(tmp_path / "one.csv", [{"body": f"t{i}", "tag": "neg"} for i in range(10)])
    with pytest.raises(PipelineInputError, match="single label"):
        prepare_data(_cfg(src), ws)


def test_demo_source_is_generated_in_the_workspace(ws):
    prepared = prepare_data(DataConfig(), ws)
    assert prepared.labels == ["negative", "neutral", "positive"]
    assert sum(prepared.sizes.values()) == 2400 and prepared.corpus_size > 5000
