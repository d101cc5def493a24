"""Reading a data source into frames of strings, and the physical line a row starts on, for error messages.

Each frame has the file's columns as strings plus `_file` and `_line`. `_line` numbers rows the way pandas
reads them (header = line 1, first row = line 2). That is the line in the file unless the file has quoted
fields that span lines or blank lines (pandas skips them); `physical_lines` finds the real lines, and is only
called when a message names a line.

Quoting (`data.quoting`): a TSV is read with quoting off (the GLUE/CoNLL convention: a tab cannot occur inside a
field, so a `"` in a text is a character), a CSV with RFC 4180 quoting. A TSV read without quoting is checked to
give one record per non-empty line; a CSV whose quote is never closed names the line it opened on
(`tasks/data/integrity.py` catches the quote that closes lines later).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import fsspec
import pandas as pd

from core.errors import PipelineInputError
from core.storage import publish_dir
from core.workspace import Workspace, exists

SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "val": "validation",
    "test": "test",
}
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}
DEMO_FILES = {"reviews": "reviews.csv", "reviews_shifted": "reviews_shifted.csv", "corpus": "corpus.txt"}
_SEPARATORS = {".csv": ",", ".tsv": "\t"}
Quoting = Literal["auto", "none", "csv"]


def separator(path: str) -> str | None:
    """The field separator of a delimited file, None for the other formats."""
    return _SEPARATORS.get(Path(path).suffix.lower())


def quote_mode(path: str, quoting: Quoting = "auto") -> int:
    """csv.QUOTE_NONE or csv.QUOTE_MINIMAL for `path`: `auto` is none for .tsv, RFC 4180 quoting otherwise."""
    if quoting == "auto":
        quoting = "none" if Path(path).suffix.lower() == ".tsv" else "csv"
    return csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL


def _check_utf8(path: str, raw: bytes) -> None:
    """Name the line of the first undecodable byte; pandas would only say 'codec can't decode'."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PipelineInputError(
            f"{path}: undecodable bytes at line {line} (byte offset {e.start}, {raw[e.start : e.start + 4]!r}): "
            "not valid UTF-8. Re-save the file as UTF-8."
        ) from None


def csv_records(path: str, quoting: Quoting = "auto") -> tuple[list[str], list[tuple[int, int, int]]]:
    """(the header's fields, [(first line, last line, fields) of each data row]) of a CSV/TSV, rows as pandas
    counts them.

    Why the csv module: pandas numbers records, not lines, and its parser errors count neither consistently;
    the csv module's `line_num` follows quoted newlines. Blank lines are skipped as pandas skips them.
    """
    header: list[str] = []
    records, previous = [], 0
    with fsspec.open(path, "r", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=separator(path), quoting=quote_mode(path, quoting))
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip(" \t")):  # pandas skips spaces and tabs only
                continue
            if header:
                records.append((start, previous, len(row)))
            else:
                header = row
    return header, records


def physical_lines(path: str, lines: list[int], quoting: Quoting = "auto") -> list[int]:
    """The lines in `path` where the rows numbered `lines` (see the module docstring) start."""
    if separator(path) is None:
        return list(lines)
    _, records = csv_records(path, quoting)
    return [records[n - 2][0] if 0 <= n - 2 < len(records) else n for n in lines]


def _parse_error(path: str, error: Exception, quoting: Quoting) -> PipelineInputError:
    """pandas' 'Expected 2 fields in line 4, saw 3' counts records, not lines: find the row ourselves."""
    header, records = csv_records(path, quoting)
    if "EOF inside string" in str(error) and records:
        start, end, _ = records[-1]  # the csv module reads the unclosed quote to the end of the file
        return PipelineInputError(
            f"{path} line {start}: a quote opened at line {start} is never closed (lines {start}-{end} would be "
            'one text). Double the quotes inside quoted texts (""), or set data.quoting=none if the file never '
            "quotes its fields."
        )
    bad = next(((start, n) for start, _, n in records if n > len(header)), None)
    if bad is None:
        return PipelineInputError(f"{path}: cannot be read as {Path(path).suffix[1:].upper()}: {error}")
    if quote_mode(path, quoting) == csv.QUOTE_NONE:
        fix = (
            "Read with data.quoting=none, a text cannot hold the separator: remove it from the text, or quote such "
            "texts and set data.quoting=csv"
        )
    else:
        fix = f"Quote texts that contain {'a tab' if separator(path) == chr(9) else 'a comma'}"
    return PipelineInputError(f"{path} line {bad[0]}: {bad[1]} fields where the header has {len(header)}. {fix}.")


def _check_record_count(path: str, df: pd.DataFrame) -> None:
    """Read without quoting, a file has one record per non-empty line; anything else is a reader we misjudged."""
    _, records = csv_records(path, "none")
    if len(records) != len(df):
        raise PipelineInputError(
            f"{path}: read {len(df)} records from {len(records)} non-empty lines after the header; every line "
            "should be one record. Check the line endings and the separator."
        )


def _read_table(path: str, suffix: str, quoting: Quoting) -> pd.DataFrame:
    try:
        if suffix in _SEPARATORS:
            mode = quote_mode(path, quoting)
            return pd.read_csv(path, sep=_SEPARATORS[suffix], dtype=str, keep_default_na=False, quoting=mode)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise PipelineInputError(f"{path}: empty file") from None
    except pd.errors.ParserError as e:
        raise _parse_error(path, e, quoting) from None
    except ValueError as e:  # read_json's "Expected object or value", "Trailing data", ...
        raise PipelineInputError(f"{path}: cannot be read as {suffix[1:].upper()}: {e}") from None


def read_file(path: str, quoting: Quoting = "auto") -> pd.DataFrame:
    """One file as a DataFrame of strings, with `_file` and `_line` columns; an empty file is an error."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise PipelineInputError(f"{path}: unsupported file type '{suffix}'; use one of {sorted(TABLE_SUFFIXES)}")
    with fsspec.open(path, "rb") as f:
        raw = f.read(1) if suffix == ".parquet" else f.read()  # the other formats are checked as UTF-8 below
    if not raw or raw.isspace():
        raise PipelineInputError(f"{path}: empty file")
    if suffix == ".txt":  # one text per line, for corpora
        _check_utf8(path, raw)
        df = pd.DataFrame({"text": raw.decode("utf-8").splitlines()})
    else:
        if suffix != ".parquet":
            _check_utf8(path, raw)
        df = _read_table(path, suffix, quoting)
        if suffix in _SEPARATORS and quote_mode(path, quoting) == csv.QUOTE_NONE:
            _check_record_count(path, df)
    if df.empty:
        cols = [str(c) for c in df.columns]
        only = f" (only a header: {cols})" if suffix in _SEPARATORS else ""
        raise PipelineInputError(f"{path}: the file has no rows{only}. Add rows, or use another file.")
    first_line = 2 if suffix in _SEPARATORS else 1  # the header is line 1
    df["_line"] = range(first_line, first_line + len(df))
    df["_file"] = path
    return df


def list_files(source: str, what: str = "data source") -> list[str]:
    """The table files of `source` (a file, or a folder of them)."""
    fs, path = fsspec.core.url_to_fs(source)
    if not fs.exists(path):
        raise PipelineInputError(f"{what} '{source}' does not exist")
    if fs.isdir(path):
        files = sorted(p for p in fs.ls(path, detail=False) if Path(p).suffix.lower() in TABLE_SUFFIXES)
        if not files:
            raise PipelineInputError(f"folder '{source}' holds no {sorted(TABLE_SUFFIXES)} files")
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        return [f if protocol in ("file", "local") else f"{protocol}://{f}" for f in files]
    return [source]


def demo_file(source: str, files: dict[str, str] = DEMO_FILES) -> str:
    """`demo:<name>` -> the demo file's name; an unknown name is an error."""
    name = source.removeprefix("demo:")
    if name not in files:
        raise PipelineInputError(f"unknown demo data '{source}'; use one of {[f'demo:{n}' for n in files]}")
    return files[name]


def resolve_demo(
    source: str,
    ws: Workspace,
    files: dict[str, str] = DEMO_FILES,
    folder: str = "demo",
    write: Callable[[Path], object] | None = None,
) -> str:
    """`demo:<name>` -> the generated demo file in the workspace's `folder`, all of them written on first use.

    Both tracks resolve their bundled demo data here: the reviews (default) and, with their own `files`, `folder`
    and `write`, the instruction data (`tasks/kinds/generation/data.py`).
    """
    name = demo_file(source, files)
    if not exists(ws.uri(folder, name)):
        if write is None:
            from tasks.data.demo import write_demo_data as write
        local = ws.local_dir(folder)  # the workspace's own folder when it is local
        write(local)
        publish_dir(local, ws.uri(folder))
    return ws.uri(folder, name)


def read_files(source: str, what: str = "data source", quoting: Quoting = "auto") -> dict[str, pd.DataFrame]:
    """A file or folder into frames keyed by split ('all' when the source has no splits)."""
    files = list_files(source, what)
    by_split: dict[str, list[pd.DataFrame]] = {}
    for path in files:
        split = SPLIT_ALIASES.get(Path(path).stem.lower()) if len(files) > 1 else None
        by_split.setdefault(split or "all", []).append(read_file(path, quoting))
    if "all" in by_split and len(by_split) > 1:
        named = sorted(k for k in by_split if k != "all")
        raise PipelineInputError(
            f"folder '{source}' mixes split files ({named}) with other files; keep only train/validation/test files"
        )
    return {k: pd.concat(v, ignore_index=True) for k, v in by_split.items()}


def read_source(
    source: str, ws: Workspace, revision: str | None = None, what: str = "data source", quoting: Quoting = "auto"
) -> dict[str, pd.DataFrame]:
    """Read a source (file, folder, URL, `hf:`, `demo:`) into frames keyed by split ('all' without splits)."""
    if source.startswith("demo:"):
        source = resolve_demo(source, ws)
    if source.startswith("hf:"):
        import datasets  # heavy (~1 s): only hub sources need it

        name, _, config = source.removeprefix("hf:").partition(":")
        # The real hub code path; offline machines never take it (the tests use local files).
        ds = datasets.load_dataset(name, config or None, revision=revision)
        frames = {}
        for split_name, split in ds.items():
            df = split.to_pandas()
            df["_line"], df["_file"] = range(1, len(df) + 1), f"{source}[{split_name}]"
            frames[SPLIT_ALIASES.get(split_name, split_name)] = df
        return frames
    return read_files(source, what, quoting)
