"""prepare_data on the layouts and mistakes real data brings (issues #11 and #12): one small fixture per case."""

from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest

from core.errors import PipelineInputError
from core.workspace import Workspace
from tasks.data.loaders import load_splits
from tasks.data.prepare import DataConfig, preflight_data, prepare_data

LABELS = ["neg", "pos"]


def _rows(n: int, start: int = 0, labels: list[str] = LABELS) -> list[dict]:
    return [
        {"body": f"review {i} says it is {labels[i % len(labels)]}", "tag": labels[i % len(labels)]}
        for i in range(start, start + n)
    ]


def _csv(path, rows) -> str:
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _folder(tmp_path, **splits: list[dict]) -> str:
    folder = tmp_path / "src"
    folder.mkdir()
    for name, rows in splits.items():
        _csv(folder / f"{name}.csv", rows)
    return str(folder)


def _cfg(source: str, **kw) -> DataConfig:
    return DataConfig(source=source, text_column="body", label_column="tag", corpus=None, **kw)


def _accounted(prepared) -> int:
    """Rows used plus rows dropped (corpus drops are not labeled rows)."""
    labeled = {k: v for k, v in prepared.dropped.items() if not k.startswith("corpus")}
    return sum(prepared.sizes.values()) + sum(labeled.values())


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(root=str(tmp_path / "ws"))


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="zero2one")
    return caplog


# ------------------------------------------------------------ 1. carve only what is missing (#12 item 6)


def test_train_and_test_folder_carves_only_validation(tmp_path, ws):
    src = _folder(tmp_path, train=_rows(300), test=_rows(60, start=1000))
    prepared = prepare_data(_cfg(src), ws)
    assert prepared.sizes["train"] + prepared.sizes["validation"] == 300  # was 224 + 31: 45 rows lost
    assert prepared.sizes["test"] == 60
    assert 30 <= prepared.sizes["validation"] <= 40  # the same train:validation ratio as a single file gets
    assert prepared.dropped == {}


def test_train_and_validation_folder_carves_only_test(tmp_path, ws):
    src = _folder(tmp_path, train=_rows(300), validation=_rows(30, start=1000))
    prepared = prepare_data(_cfg(src), ws)
    assert prepared.sizes["train"] + prepared.sizes["test"] == 300 and prepared.sizes["validation"] == 30


# ------------------------------------------------------------ 2. duplicates in the user's train file (#11)


def test_duplicate_train_texts_are_dropped_before_validation_is_carved(tmp_path, ws):
    train = _rows(300)
    train += [dict(train[i]) for i in (5, 50, 150, 250)]  # the same text and label again ("not quite" twice)
    src = _folder(tmp_path, train=train, test=_rows(60, start=1000))
    prepared = prepare_data(_cfg(src), ws)  # was: "text ... is in train.csv line 7 (train) and ... (validation)"
    assert prepared.dropped == {"duplicate texts (kept first)": 4}
    assert prepared.sizes["train"] + prepared.sizes["validation"] == 300 and prepared.sizes["test"] == 60
    splits = load_splits(prepared)
    assert not set(splits["train"]["text"]) & set(splits["validation"]["text"])


def test_conflicting_label_duplicates_are_reported_and_dropped(tmp_path, ws, logs):
    rows = _rows(60)
    rows.insert(5, {"body": "not quite", "tag": "neg"})  # line 7
    rows.insert(20, {"body": "not quite", "tag": "pos"})  # line 22
    rows.insert(30, {"body": "not quite", "tag": "neg"})  # line 32
    src = _csv(tmp_path / "d.csv", rows)
    prepared = prepare_data(_cfg(src), ws)
    assert prepared.dropped == {"texts with conflicting labels (all copies)": 3}
    assert _accounted(prepared) == 63
    assert "not quite" not in set(load_splits(prepared)["train"]["text"])
    report = logs.text
    assert "'not quite'" in report and "d.csv" in report and "lines 7, 32" in report and "line 22" in report
    kept = prepare_data(_cfg(src, on_conflicting_labels="keep_first"), ws)
    assert kept.dropped == {"texts with conflicting labels (kept the first)": 2}
    with pytest.raises(PipelineInputError, match=r"'not quite'.*d\.csv lines 7, 32.*'neg'.*d\.csv line 22.*'pos'"):
        prepare_data(_cfg(src, on_conflicting_labels="error"), ws)


# ------------------------------------------------------------ 3. leakage: never drop from the user's test set


def test_leakage_drop_keeps_the_given_test_set_intact(tmp_path, ws):
    train, test = _rows(200), _rows(40, start=1000)
    test[3:6] = [dict(train[i]) for i in (10, 20, 30)]  # three train texts also in test
    src = _folder(tmp_path, train=train, test=test)
    with pytest.raises(PipelineInputError, match=r"train\.csv line 12 \(train\) and in .*test\.csv line 5 \(test\)"):
        prepare_data(_cfg(src), ws)
    prepared = prepare_data(_cfg(src, on_invalid="drop"), ws)
    assert prepared.sizes["test"] == 40  # was 37: the user's benchmark lost rows
    assert prepared.sizes["train"] + prepared.sizes["validation"] == 197
    assert prepared.dropped == {"texts also in test (dropped from train)": 3}
    assert _accounted(prepared) == 240


def test_leakage_with_given_validation_drops_from_train_then_validation(tmp_path, ws):
    train, val, test = _rows(200), _rows(30, start=1000), _rows(30, start=2000)
    val[0] = dict(train[7])  # train vs validation: drop from train
    test[0] = dict(train[8])  # train vs test: drop from train
    val[1] = dict(test[5])  # validation vs test: drop from validation
    src = _folder(tmp_path, train=train, validation=val, test=test)
    prepared = prepare_data(_cfg(src, on_invalid="drop"), ws)
    assert prepared.sizes == {"train": 198, "validation": 29, "test": 30}
    assert prepared.dropped == {
        "texts also in validation (dropped from train)": 1,
        "texts also in test (dropped from train)": 1,
        "texts also in test (dropped from validation)": 1,
    }


# ------------------------------------------------------------ 4. max_rows with splits (#11)


def test_max_rows_caps_a_source_with_splits(tmp_path, ws, logs):
    src = _folder(tmp_path, train=_rows(300), test=_rows(100, start=1000))
    prepared = prepare_data(_cfg(src, max_rows=80), ws)
    assert sum(prepared.sizes.values()) <= 80  # was 355: max_rows was ignored
    assert prepared.sizes["test"] == 20  # the same fraction (80 of 400) of every given split
    assert prepared.dropped == {"rows over data.max_rows (not sampled)": 400 - sum(prepared.sizes.values())}
    counts = pd.Series(load_splits(prepared)["test"]["label"]).value_counts()
    assert counts.tolist() == [10, 10]  # a stratified sample of the test set
    assert "sample" in logs.text


def test_max_rows_single_file_unchanged(tmp_path, ws):
    prepared = prepare_data(_cfg(_csv(tmp_path / "d.csv", _rows(300)), max_rows=100), ws)
    assert sum(prepared.sizes.values()) == 100
    assert prepared.dropped == {"rows over data.max_rows (not sampled)": 200}


# ------------------------------------------------------------ 5. labels with whitespace or case (#12 item 7)


def test_label_whitespace_is_stripped_and_counted(tmp_path, ws, logs):
    rows = _rows(60)
    for i in (1, 3, 5):
        rows[i]["tag"] = "pos "
    rows[2]["tag"] = " neg"
    prepared = prepare_data(_cfg(_csv(tmp_path / "d.csv", rows)), ws)
    assert prepared.labels == ["neg", "pos"]  # was ['neg', ' neg', 'pos', 'pos ']: four classes from two
    assert "stripped surrounding whitespace from 4 labels" in logs.text


def test_labels_that_differ_only_in_case_are_warned_about(tmp_path, ws, logs):
    rows = _rows(60) + [{"body": f"shouting {i}", "tag": "POS"} for i in range(6)]
    prepared = prepare_data(_cfg(_csv(tmp_path / "d.csv", rows)), ws)
    assert prepared.labels == ["POS", "neg", "pos"]
    warning = [r for r in logs.records if r.levelno == logging.WARNING and "differ only in case" in r.getMessage()]
    assert warning and "'POS'" in warning[0].getMessage() and "'pos'" in warning[0].getMessage()


# ------------------------------------------------------------ 6. classes missing from a split (#12 item 8)


def test_a_class_missing_from_the_given_test_set_is_refused_with_a_table(tmp_path, ws):
    three = ["neg", "mid", "pos"]
    test = [r for r in _rows(30, start=1000, labels=three) if r["tag"] != "mid"]
    src = _folder(tmp_path, train=_rows(90, labels=three), test=test)
    with pytest.raises(PipelineInputError, match=r"(?s)test.*has no rows of label\(s\) \['mid'\].*train.*test"):
        prepare_data(_cfg(src), ws)


def test_a_rare_class_reaches_every_carved_split(tmp_path, ws):
    rows = [{"body": f"ordinary message {i}", "tag": "ham"} for i in range(297)]
    rows += [{"body": f"rare message {i}", "tag": "spam"} for i in range(3)]
    prepared = prepare_data(_cfg(_csv(tmp_path / "d.csv", rows)), ws)  # was: all 3 spam rows in train
    splits = load_splits(prepared)
    for name in ("train", "validation", "test"):
        assert 1 in splits[name]["label"], name


def test_a_thin_class_in_validation_is_warned_about(tmp_path, ws, logs):
    three = ["neg", "mid", "pos"]
    val = [r for r in _rows(30, start=1000, labels=three) if r["tag"] != "mid"] + _rows(1, start=5002, labels=three)
    src = _folder(tmp_path, train=_rows(90, labels=three), validation=val, test=_rows(30, start=2000, labels=three))
    prepare_data(_cfg(src), ws)
    warning = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    assert any("validation" in w and "'mid'" in w and "fewer than 2" in w for w in warning), warning


# ------------------------------------------------------------ 7. physical line numbers (#12 item 9)


def test_line_numbers_count_physical_lines_of_multiline_fields(tmp_path, ws):
    rows = [{"body": f"first line {i}\nsecond line\nthird line", "tag": LABELS[i % 2]} for i in range(100)]
    rows.append({"body": "this row has no label", "tag": ""})  # record 101: starts on physical line 302
    src = _csv(tmp_path / "multi.csv", rows)
    with pytest.raises(PipelineInputError, match=r"multi\.csv, line 302, column 'tag': missing label"):
        prepare_data(_cfg(src), ws)


def test_line_numbers_count_blank_lines_and_extra_fields(tmp_path, ws):
    path = tmp_path / "blank.csv"
    path.write_text('body,tag\n"a\nb",neg\n\nok,pos\n,neg\n')  # the empty text starts on line 6
    with pytest.raises(PipelineInputError, match=r"blank\.csv, line 6, column 'body'"):
        prepare_data(_cfg(str(path)), ws)
    path.write_text('body,tag\n"a\nb",neg\nok,pos\nhello, world,pos\n')
    with pytest.raises(PipelineInputError, match=r"blank\.csv line 5: 3 fields where the header has 2"):
        prepare_data(_cfg(str(path)), ws)


# ------------------------------------------------------------ 8. empty and header-only files (#12 items 10, 11)


def test_empty_file_is_a_user_error(tmp_path, ws):
    path = tmp_path / "e.csv"
    path.write_bytes(b"")
    with pytest.raises(PipelineInputError, match=r"e\.csv: empty file"):  # was pandas' EmptyDataError
        prepare_data(_cfg(str(path)), ws)


def test_header_only_file_says_it_has_no_rows(tmp_path, ws):
    path = tmp_path / "h.csv"
    path.write_text("body,tag\n")
    with pytest.raises(
        PipelineInputError, match=r"h\.csv: the file has no rows \(only a header: \['body', 'tag'\]\)"
    ):  # was "single label []"
        prepare_data(_cfg(str(path)), ws)


# ------------------------------------------------------------ preflight for the CLI (#12 item 12)


def test_preflight_catches_what_the_cli_should_stop_on(tmp_path):
    with pytest.raises(PipelineInputError, match="does not exist"):
        preflight_data(_cfg(str(tmp_path / "nope.csv")), str(tmp_path / "ws"))
    src = _csv(tmp_path / "d.csv", _rows(60))
    preflight_data(_cfg(src), str(tmp_path / "ws"))
    with pytest.raises(PipelineInputError, match=r"column 'text' not found"):
        preflight_data(_cfg(src).model_copy(update={"text_column": "text"}), str(tmp_path / "ws"))
    bad = _folder(tmp_path, train=_rows(60), test=[*_rows(10, start=100), {"body": "x", "tag": "maybe"}])
    with pytest.raises(PipelineInputError, match=r"test\.csv, line 12, column 'tag': label not one of"):
        preflight_data(_cfg(bad), str(tmp_path / "ws"))
    with pytest.raises(PipelineInputError, match="unknown demo data"):
        preflight_data(DataConfig(source="demo:nope"), str(tmp_path / "ws"))
    preflight_data(DataConfig(), str(tmp_path / "ws"))  # the demo data needs no file yet
    with pytest.raises(PipelineInputError, match="corpus.*does not exist"):
        preflight_data(_cfg(src).model_copy(update={"corpus": str(tmp_path / "c.txt")}), str(tmp_path / "ws"))


def test_preflight_imports_no_heavy_library(tmp_path):
    src = _csv(tmp_path / "d.csv", _rows(60))
    code = (
        "import sys; from tasks.data.prepare import DataConfig, preflight_data; "
        f"preflight_data(DataConfig(source={src!r}, text_column='body', label_column='tag', corpus=None), None); "
        "print(sorted(m for m in ('datasets', 'torch', 'sklearn', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
