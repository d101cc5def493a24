"""From validated rows to train/validation/test: duplicates, leakage, the row cap, carving, class coverage.

The order matters and is the stage's contract: repeats in the training rows go first (so no text can land in
two carved splits), then texts shared with a split the user gave (dropped from train, never from the user's
test set), then `max_rows`, and only then are the missing splits carved out of train. Every row not used is
counted in `dropped` under a reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from core.errors import PipelineInputError
from tasks.data.read import physical_lines
from tasks.data.three_way_split import three_way_split
from tasks.results.common import SPLITS

if TYPE_CHECKING:
    from tasks.stage_configs import SplitConfig

# Which copy of a shared text goes: never the test set's (the user's benchmark); validation only picks the
# epoch and the model, so between validation and test it is validation that loses the row.
_LEAKAGE_ORDER = (("train", "validation"), ("train", "test"), ("validation", "test"))


def where(rows: pd.DataFrame, sep: str = " ") -> str:
    """'f.csv line 7' or 'f.csv lines 7, 32, g.csv line 3': the physical lines of `rows` in their files."""
    parts = []
    for file, group in rows.groupby("_file", sort=False):
        lines = physical_lines(str(file), [int(n) for n in group["_line"]])
        parts.append(f"{file}{sep}line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}")
    return ", ".join(parts)


def _describe_conflicts(rows: pd.DataFrame, limit: int = 5) -> str:
    texts = list(dict.fromkeys(rows["text"]))
    described = []
    for text in texts[:limit]:
        group = rows[rows["text"] == text]
        says = [
            f"{where(g)} {'say' if len(g) > 1 else 'says'} {label!r}" for label, g in group.groupby("label", sort=False)
        ]
        described.append(f"{text[:60]!r}: {', '.join(says)}")
    more = [f"... and {len(texts) - limit} more"] if len(texts) > limit else []
    return "\n  " + "\n  ".join(described + more)


def drop_repeats(df: pd.DataFrame, on_conflict: str, dropped: dict[str, int], log: logging.Logger) -> pd.DataFrame:
    """Repeats of a text in the training rows: an exact repeat keeps its first copy (counted); a text with
    different labels is reported and follows `on_conflict` (drop every copy, keep_first, or error)."""
    conflict = df.groupby("text")["label"].transform("nunique") > 1
    if conflict.any():
        n_texts, described = df.loc[conflict, "text"].nunique(), _describe_conflicts(df[conflict])
        if on_conflict == "error":
            raise PipelineInputError(
                f"{n_texts} text(s) occur with different labels:{described}\nFix the labels, or set "
                "data.on_conflicting_labels=drop (drop every copy) or keep_first."
            )
        if on_conflict == "drop":
            extra, reason, action = conflict, "texts with conflicting labels (all copies)", "dropped every copy"
        else:
            extra = conflict & df.duplicated("text")
            reason, action = "texts with conflicting labels (kept the first)", "kept the first copy of each"
        dropped[reason] = int(extra.sum())
        df = df[~extra]
        log.warning(
            "%d text(s) occur with different labels; %s (%d rows; data.on_conflicting_labels=%s):%s",
            n_texts,
            action,
            int(extra.sum()),
            on_conflict,
            described,
        )
    n = len(df)
    df = df.drop_duplicates("text")
    if n - len(df):
        dropped["duplicate texts (kept first)"] = n - len(df)
    return df


def drop_leakage(frames: dict[str, pd.DataFrame], on_invalid: str, dropped: dict[str, int]) -> dict[str, pd.DataFrame]:
    """A text in two splits inflates the metrics: stop (on_invalid=error), or drop it from the split that is
    not the user's benchmark (see _LEAKAGE_ORDER). Runs before any split is carved out of train."""
    frames = dict(frames)
    for a, b in _LEAKAGE_ORDER:
        if a not in frames or b not in frames:
            continue
        dup = frames[a]["text"].isin(set(frames[b]["text"]))
        if not dup.any():
            continue
        if on_invalid == "error":
            row = frames[a][dup].iloc[:1]
            other = frames[b][frames[b]["text"] == row["text"].iloc[0]].iloc[:1]
            raise PipelineInputError(
                f"text {row['text'].iloc[0][:60]!r} is in {where(row)} ({a}) and in {where(other)} ({b}); "
                f"{int(dup.sum())} such rows. The same text in two splits inflates the metrics: remove them, or "
                f"set data.on_invalid=drop to drop them from {a} (never from the test set)."
            )
        dropped[f"texts also in {b} (dropped from {a})"] = int(dup.sum())
        frames[a] = frames[a][~dup]
    return frames


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows, stratified by label where every label has enough rows for that."""
    from sklearn.model_selection import train_test_split

    if n >= len(df):
        return df
    try:
        return train_test_split(df, train_size=n, random_state=seed, stratify=df["label"])[0]
    except ValueError:  # a label with a single row, or n below the number of labels
        return df.sample(n=n, random_state=seed)


def cap_rows(
    frames: dict[str, pd.DataFrame], max_rows: int | None, seed: int, dropped: dict[str, int], log: logging.Logger
) -> dict[str, pd.DataFrame]:
    """At most `max_rows` rows in all. A source with its own splits gives each of them the same share
    (a stratified sample), so its proportions hold; a source without splits is sampled before it is split."""
    total = sum(len(f) for f in frames.values())
    if max_rows is None:
        return frames
    if len(frames) == 1:  # a plain shuffle, even under the cap: kept as it was, so the splits stay the same
        ((key, df),) = frames.items()
        frames = {key: df.sample(n=min(max_rows, len(df)), random_state=seed)}
    elif total > max_rows:
        share = max_rows / total
        # Each given split keeps at least one row per label where it can (a tiny cap must not empty a split).
        given = {
            k: _sample(v, max(int(len(v) * share), v["label"].nunique()), seed)
            for k, v in frames.items()
            if k != "train"
        }
        left = max(max_rows - sum(map(len, given.values())), 1)
        frames = {"train": _sample(frames["train"], left, seed), **given}
        log.info(
            "data.max_rows=%d: using a stratified sample of %.1f%% of every split the source gives (%s); "
            "the test scores are on that sample of its test set",
            max_rows,
            100 * share,
            ", ".join(f"{k} {len(v)}" for k, v in frames.items()),
        )
    kept = sum(len(f) for f in frames.values())
    if kept < total:
        dropped["rows over data.max_rows (not sampled)"] = total - kept
    return frames


def carve(pool: pd.DataFrame, missing: list[str], split: SplitConfig, source: str) -> dict[str, pd.DataFrame]:
    """The splits the source lacks, carved out of its train rows (stratified), at the sizes a single file gets:
    `split.test` and `split.validation` of all labeled rows (`tasks/data/three_way_split.py`). Nothing else leaves
    train."""
    if not missing:
        return {"train": pool}
    counts, need = pool["label"].value_counts(), len(missing) + 1
    if (counts < need).any():
        rare = counts[counts < need].index[0]
        raise PipelineInputError(
            f"{source}: label '{rare}' has only {counts[rare]} training example(s); need at least {need} to carve "
            f"{' and '.join(missing)} out of train. Add examples, or leave the label out."
        )
    try:
        frames = three_way_split(pool, split.validation, split.test, split.seed, missing=missing)
    except ValueError as e:  # too few rows for the shares asked
        raise PipelineInputError(f"{source}: cannot carve {missing} out of {len(pool)} training rows: {e}") from None
    return _every_label_in(frames, missing)


def _every_label_in(frames: dict[str, pd.DataFrame], carved: list[str]) -> dict[str, pd.DataFrame]:
    """Stratified splitting rounds a rare label's share down to zero (3 of 3,000 rows: all three stay in train).
    Move one row of each such label from train into every carved split that lacks it."""
    for name in carved:
        for label in sorted(set(frames["train"]["label"]) - set(frames[name]["label"])):
            train = frames["train"]
            rows = train[train["label"] == label]
            if len(rows) >= 2:
                frames["train"] = train.drop(rows.index[-1:])
                frames[name] = pd.concat([frames[name], rows.iloc[-1:]])
    return frames


def check_labels_per_split(
    frames: dict[str, pd.DataFrame], labels: list[str], source: str, log: logging.Logger
) -> None:
    """Refuse a test split without a label that train has (its macro-F1 would be meaningless; a carved test
    split always has every label, so this is a test set the user gave); warn about thin or missing labels."""
    table = pd.DataFrame({s: frames[s]["label"].value_counts().reindex(labels, fill_value=0) for s in SPLITS})
    table.index.name = "label"
    shown = f"Rows per split and label:\n{table.to_string()}"
    trained = [lab for lab in labels if table.at[lab, "train"] > 0]
    if absent := [lab for lab in trained if table.at[lab, "test"] == 0]:
        raise PipelineInputError(
            f"{source}: the test split has no rows of label(s) {absent}, which train has: the test scores (macro-F1) "
            f"would be meaningless for them.\n{shown}\nAdd test rows of those labels, or leave the labels out "
            "(remove their rows, or list the other labels in data.labels with data.on_invalid=drop)."
        )
    problems = []
    if untrained := [lab for lab in labels if lab not in trained]:
        problems.append(f"train has no rows of label(s) {untrained}: the model cannot learn them")
    if absent := [lab for lab in trained if table.at[lab, "validation"] == 0]:
        problems.append(f"validation has no rows of label(s) {absent}")
    for s in ("validation", "test"):
        if thin := [lab for lab in labels if table.at[lab, s] == 1]:
            problems.append(f"{s} has fewer than 2 rows of label(s) {thin}: its scores for them are noise")
    if problems:
        log.warning("%s: %s.\n%s", source, "; ".join(problems), shown)
