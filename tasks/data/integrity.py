"""Rows that a quote merged: the check that the records read are the records in the file.

A CSV quote that opens in one row and closes rows later turns those rows into one text, and pandas reads that
without a word (a real Chinese review TSV read with quoting: 9,600 rows became 9,146, one "text" 41,846
characters long). The reader cannot know where a text should end, but the data stage knows the labels: a text
that spans lines, and either holds lines that parse as rows of the file (the label column holds a known label) or
is far longer than its column's typical text, stops the run with the line the quote opened on and where it
closed. Only a delimited file read with quoting can merge rows; TSV is read without quoting by default.
"""

from __future__ import annotations

import csv
from collections.abc import Collection

import pandas as pd

from core.errors import PipelineInputError
from tasks.data.read import Quoting, csv_records, quote_mode, separator

LONG_FACTOR = 20  # a text over 20x its column's p99 (of one-line texts) ...
LONG_FLOOR = 5_000  # ... and over 5,000 characters is not one text


def _rows_inside(value: str, sep: str, width: int, label_at: int | None, labels: Collection[str]) -> list[int]:
    """The line offsets (1 = the text's second line) of lines in `value` that parse as a labeled row."""
    if label_at is None:
        return []
    found = []
    for offset, line in enumerate(value.splitlines()[1:], start=1):
        fields = next(csv.reader([line], delimiter=sep), [])
        if len(fields) == width and fields[label_at].strip() in labels:
            found.append(offset)
    return found


def _typical(values: pd.Series) -> float:
    """The p99 length of a column: robust to a merge or two, and long where the texts are (emails with line
    breaks are long throughout, so a long one is not flagged; a small file falls back on the label rule)."""
    return float(values.str.len().quantile(0.99))


def _merged_error(
    path: str, row: pd.Series, column: str, value: str, inside: list[int], typical: float, quoting: Quoting
) -> PipelineInputError:
    _, records = csv_records(path, quoting)
    n = int(row["_line"]) - 2
    start, end, _ = records[n] if 0 <= n < len(records) else (int(row["_line"]), int(row["_line"]), 0)
    if inside:
        first = value.splitlines()[inside[0]]
        why = f"{len(inside)} of its lines read as rows of their own (line {start + inside[0]}: {first[:80]!r})"
    else:
        why = f"its column's p99 is {typical:.0f} characters"
    return PipelineInputError(
        f"{path} line {start}, column '{column}': one text of {len(value):,} characters spans lines {start}-{end}; "
        f"{why}. Likely cause: a quote opened at line {start} closes only at line {end}, so those lines were read "
        'as one text. Double the quotes inside quoted texts (""), or set data.quoting=none if the file never '
        "quotes its fields (a TSV's default)."
    )


def check_merged_rows(
    frame: pd.DataFrame, columns: tuple[str, str], labels: Collection[str], quoting: Quoting = "auto"
) -> None:
    """Stop on a text (or label) of `columns` = (text column, label column) that a quote merged from rows."""
    labels = set(labels)
    for path, rows in frame.groupby("_file", sort=False):
        path = str(path)
        sep = separator(path)
        if sep is None or quote_mode(path, quoting) == csv.QUOTE_NONE:
            continue  # only a delimited file read with quoting can merge rows
        header = [c for c in rows.columns if not str(c).startswith("_")]
        label_at = header.index(columns[1]) if columns[1] in header else None
        for column in (c for c in columns if c in rows.columns):
            values = rows[column].map(lambda v: v if isinstance(v, str) else "")
            spans = values.str.contains("\n|\r", regex=True)
            if not spans.any():
                continue
            typical = _typical(values)
            limit = max(LONG_FACTOR * typical, LONG_FLOOR)
            for index in spans[spans].index:
                value = values[index]
                inside = _rows_inside(value, sep, len(header), label_at, labels)
                if inside or len(value) > limit:
                    raise _merged_error(path, rows.loc[index], column, value, inside, typical, quoting)
