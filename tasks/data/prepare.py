"""The prepare_data stage: read, validate, split and fingerprint the data; save it as Arrow.

Sources: a local file or fsspec URL (csv, tsv, jsonl, parquet, txt), a folder of them (files
named train/validation/test keep their split), a Hugging Face dataset (`hf:<name>[:<config>]`),
or the bundled demo data (`demo:reviews`, `demo:reviews_shifted`, `demo:corpus`).

Every check runs before any compute is spent, and each error names the file, line, column and
an example value. Policy for bad rows: `on_invalid: error` (default) stops; `on_invalid: drop`
drops them and counts them in the summary. Exact duplicate texts within the training rows are
always dropped before any split is carved (counted), so no text can land in two splits by chance;
a text with conflicting labels is reported and dropped (`on_conflicting_labels`). A split the
source lacks is carved out of train; a split it gives is kept as given, and a user's test set is
never changed except by `max_rows`. `tasks/data/split.py` holds those steps, `tasks/data/read.py`
the reading. `preflight_data` runs the cheap checks before Prefect starts (the CLI calls it).

Its result (`PreparedData`) is in `tasks/results.py`, `SplitConfig` in `tasks/stage_configs.py` (instruction data
splits the same way), reading the splits back (`load_splits`, `load_corpus`) in `tasks/data/loaders.py`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import reporting
from core.errors import PipelineInputError
from core.retry import RetryPolicy
from core.workspace import Workspace, exists
from tasks.data.integrity import check_merged_rows
from tasks.data.label_names import renamed
from tasks.data.read import Quoting, demo_file, list_files, read_files, read_source
from tasks.data.split import (
    cap_rows,
    carve,
    check_labels_per_split,
    drop_leakage,
    drop_repeats,
    where,
)
from tasks.results.common import SPLITS
from tasks.results.data import PreparedData
from tasks.stage_configs import SplitConfig

__all__ = ["DataConfig", "prepare_data", "preflight_data"]


class DataConfig(BaseModel):
    """Which data to train on and how to read it. Defaults: the bundled demo reviews."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("demo:reviews", description="File, folder, fsspec URL, hf:<name>[:<config>] or demo:<name>.")
    text_column: str = Field("review", description="Column holding the text.")
    label_column: str = Field("sentiment", description="Column holding the label (surrounding spaces are stripped).")
    labels: list[str] | None = Field(None, description="Allowed labels, in order; default: those found in train.")
    corpus: str | None = Field(
        None,
        description="Unlabeled pretraining corpus (txt: one text per line); default (null): the train texts. "
        "Left unset with a demo: source, the demo corpus.",
    )
    quoting: Quoting = Field(
        "auto",
        description="Quotes in delimited files: none (a quote is a character; a field cannot hold the separator), "
        "csv (RFC 4180), or auto: none for .tsv, csv for .csv.",
    )
    hf_revision: str | None = Field(None, description="Dataset revision (tag/commit) for hf: sources.")
    split: SplitConfig = SplitConfig()
    on_invalid: Literal["error", "drop"] = Field(
        "error",
        description="Stop on bad rows, or drop and count them. A text in train and in a given validation/test "
        "split is dropped from train, never from the given test set.",
    )
    on_conflicting_labels: Literal["drop", "keep_first", "error"] = Field(
        "drop",
        description="A training text that occurs with different labels: drop every copy (its label is unknown), "
        "keep the first, or stop. Reported with file and lines either way.",
    )
    max_rows: int | None = Field(
        None,
        gt=0,
        description="Use at most this many labeled rows in all (quick runs). A source with its own splits gives "
        "each split the same share (stratified sample), so the test scores are on a sample of its test set.",
    )
    retry: RetryPolicy = RetryPolicy(retries=1)

    @model_validator(mode="after")
    def _demo_corpus(self) -> DataConfig:
        """Only the demo pretrains on the demo corpus: a demo: source with no corpus setting implies it (set
        explicitly, so a saved config keeps it); any other source pretrains on its own train texts."""
        if "corpus" not in self.model_fields_set and self.source.startswith("demo:"):
            self.corpus = "demo:corpus"
            self.model_fields_set.add("corpus")
        return self


# ---------------------------------------------------------------- validation


def _bad_rows(
    df: pd.DataFrame, mask: pd.Series, what: str, column: str, fix: str, cfg: DataConfig, dropped: dict[str, int]
) -> pd.DataFrame:
    """Stop with a clear error, or drop and count, the rows where `mask` is true."""
    if not mask.any():
        return df
    if cfg.on_invalid == "error":
        bad = df[mask]
        example = bad[column].iloc[0]
        shown = cfg.text_column if column == "text" else cfg.label_column  # the user's column name
        raise PipelineInputError(
            f"{where(bad.iloc[:1], sep=', ')}, column '{shown}': {what} (value {example!r}; "
            f"{int(mask.sum())} such rows). {fix} or set data.on_invalid=drop to drop and count them."
        )
    dropped[what] = dropped.get(what, 0) + int(mask.sum())
    return df[~mask]


def _as_str(value: object) -> str:
    """Cell to string; None/NaN (missing in JSON or Parquet) become '' so they are caught as missing."""
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _strip_labels(df: pd.DataFrame, log: logging.Logger | None) -> pd.DataFrame:
    """'pos ' and 'pos' are one label: strip surrounding whitespace, and say how often it was there."""
    stripped = df["label"].str.strip()
    changed = stripped != df["label"]
    if changed.any() and log:
        example = df.loc[changed, "label"].iloc[0]
        log.info(
            "%s: stripped surrounding whitespace from %d labels (e.g. %r -> %r)",
            df["_file"].iloc[0],
            int(changed.sum()),
            example,
            example.strip(),
        )
    return df.assign(label=stripped)


def _validate_frame(
    df: pd.DataFrame, cfg: DataConfig, labels: list[str] | None, dropped: dict, log: logging.Logger | None
) -> pd.DataFrame:
    for column, key in ((cfg.text_column, "text_column"), (cfg.label_column, "label_column")):
        if column not in df.columns:
            cols = [c for c in df.columns if not c.startswith("_")]
            raise PipelineInputError(
                f"{df['_file'].iloc[0]}: column '{column}' not found (columns: {cols}). "
                f"Set data.{key} to the column that holds the {key.split('_')[0]}."
            )
    df = df.rename(columns={cfg.text_column: "text", cfg.label_column: "label"})[["text", "label", "_line", "_file"]]
    for column in ("text", "label"):
        df[column] = df[column].map(_as_str)
    df = _strip_labels(df, log)
    empty_text = df["text"].str.strip() == ""
    df = _bad_rows(
        df, empty_text, "empty or whitespace-only text", "text", "Fill in or remove those rows", cfg, dropped
    )
    df = _bad_rows(df, df["label"] == "", "missing label", "label", "Label those rows", cfg, dropped)
    if labels is not None:
        fix = "Fix the label or add it to data.labels"
        df = _bad_rows(df, ~df["label"].isin(labels), f"label not one of {labels}", "label", fix, cfg, dropped)
    return df


def _labels(train: pd.DataFrame, cfg: DataConfig, log: logging.Logger | None) -> list[str]:
    """data.labels, or the labels train has; warn about labels that differ only in case ('Pos' vs 'pos')."""
    if train.empty:
        raise PipelineInputError(f"{cfg.source}: no rows left to train on after dropping bad rows")
    labels = cfg.labels or sorted(train["label"].unique())
    if len(labels) < 2:
        raise PipelineInputError(f"{cfg.source}: column '{cfg.label_column}' has a single label {labels}; need two")
    by_case: dict[str, list[str]] = {}
    for label in labels:
        by_case.setdefault(label.casefold(), []).append(label)
    for same in (group for group in by_case.values() if len(group) > 1):
        if log:
            log.warning(
                "%s: labels %s differ only in case, so they are %d separate classes. If they are one class, "
                "make them the same in the file.",
                cfg.source,
                " and ".join(map(repr, same)),
                len(same),
            )
    return labels


def _labeled_split(df: pd.DataFrame, name: str, cfg: DataConfig, labels: list[str]) -> None:
    """A given validation/test file without labels (the competition layout: id + text, or a hub test split whose
    labels are all -1) cannot be scored: stop and say how to run without it, never guess."""
    file, label = df["_file"].iloc[0], cfg.label_column
    fix = (
        f"To run without it, move or rename the file out of the folder (the {name} split is then carved from "
        "train) or point data.source at the train file"
    )
    if cfg.text_column in df.columns and label not in df.columns:
        cols = [c for c in df.columns if not c.startswith("_")]
        raise PipelineInputError(
            f"{file}: the {name} split has no label column '{label}' (columns: {cols}), so it cannot be scored. "
            f"{fix}; if the labels are in another column, set data.label_column."
        )
    values = set(df[label].map(_as_str).str.strip()) if label in df.columns else set()
    if len(df) > 1 and len(values) == 1 and not values & set(labels):
        raise PipelineInputError(
            f"{file}: the {name} split is unlabeled: column '{label}' is {values.pop()!r} in every row, not one "
            f"of the labels {labels}, so it cannot be scored. {fix}."
        )


def _validate_source(
    frames: dict[str, pd.DataFrame], cfg: DataConfig, dropped: dict, log: logging.Logger | None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every split's columns, rows and labels (labels from train unless data.labels lists them)."""
    key = "train" if "train" in frames else "all"
    if key not in frames:
        raise PipelineInputError(f"source '{cfg.source}' has splits {sorted(frames)} but no 'train'")
    for extra in sorted(set(frames) - {*SPLITS, "all"}):  # e.g. a hub dataset's 'unsupervised' split
        dropped[f"rows of split '{extra}' (not train/validation/test)"] = len(frames[extra])
    train = _validate_frame(frames[key], cfg, cfg.labels, dropped, log)
    labels = _labels(train, cfg, log)
    for name in (s for s in ("validation", "test") if s in frames):
        _labeled_split(frames[name], name, cfg, labels)
    for frame in frames.values():
        check_merged_rows(frame, (cfg.text_column, cfg.label_column), labels, cfg.quoting)
    out = {key: train}
    for name in (s for s in ("validation", "test") if s in frames):
        out[name] = _validate_frame(frames[name], cfg, labels, dropped, log)
    return out, labels


def _make_splits(
    frames: dict[str, pd.DataFrame], labels: list[str], cfg: DataConfig, dropped: dict, log: logging.Logger
) -> dict[str, pd.DataFrame]:
    """Validated frames -> train/validation/test, in the order tasks/data/split.py explains."""
    frames = dict(frames)
    key = "train" if "train" in frames else "all"
    frames["train"] = drop_repeats(frames.pop(key), cfg.on_conflicting_labels, dropped, log)
    frames = drop_leakage(frames, cfg.on_invalid, dropped)
    frames = cap_rows(frames, cfg.max_rows, cfg.split.seed, dropped, log)
    missing = [s for s in ("test", "validation") if s not in frames]
    frames |= carve(frames["train"], missing, cfg.split, cfg.source)
    for split in SPLITS:
        if frames[split].empty:
            raise PipelineInputError(f"{cfg.source}: split '{split}' is empty (dropped: {dropped or 'nothing'})")
    check_labels_per_split(frames, labels, cfg.source, log)
    return frames


def preflight_data(cfg: DataConfig, workspace_root: str | None = None) -> None:
    """The checks a CLI can run in a second or two, before Prefect starts: the source exists and reads, its
    columns are there, its labels are valid (the same PipelineInputError messages as prepare_data).

    Imports no heavy library (no datasets, torch or scikit-learn). `demo:` sources are checked by name only
    (the flow generates them in the workspace, so `workspace_root` is not needed yet) and `hf:` sources not
    at all (reading one is a hub download); prepare_data checks everything again in the flow.
    """
    del workspace_root  # accepted so the CLI can pass it; nothing here needs it
    for source, what in ((cfg.source, "data source"), (cfg.corpus, "pretraining corpus")):
        if not source or source.startswith("hf:"):
            continue
        if source.startswith("demo:"):
            demo_file(source)
        elif what == "data source":
            _validate_source(read_files(source, what, cfg.quoting), cfg, {}, log=None)
        else:
            list_files(source, what)  # a corpus may be large: its existence is enough here


# ---------------------------------------------------------------- the stage


def _fingerprint(frames: dict[str, pd.DataFrame], corpus: list[str], labels: list[str]) -> str:
    h = hashlib.sha256(repr(labels).encode())
    for split in SPLITS:
        for text, label in zip(frames[split]["text"], frames[split]["label"], strict=True):
            h.update(f"{split}\x1f{label}\x1f{text}\x1e".encode())
    for text in corpus:
        h.update(f"corpus\x1f{text}\x1e".encode())
    return h.hexdigest()[:16]


def _read_corpus(cfg: DataConfig, ws: Workspace, train_texts: list[str], held_out: set[str]) -> tuple[list[str], int]:
    """The unlabeled corpus; texts of the evaluation splits are removed (they must stay unseen)."""
    if cfg.corpus is None:
        return list(train_texts), 0
    frames = read_source(cfg.corpus, ws, what="pretraining corpus", quoting=cfg.quoting)
    df = pd.concat(frames.values(), ignore_index=True)
    column = "text" if "text" in df.columns else cfg.text_column
    if column not in df.columns:
        raise PipelineInputError(f"{df['_file'].iloc[0]}: corpus has no 'text' or '{cfg.text_column}' column")
    texts = [t for t in df[column].astype(str) if t.strip()]
    kept = [t for t in texts if t not in held_out]
    if not kept:
        raise PipelineInputError(f"pretraining corpus '{cfg.corpus}' has no non-empty texts")
    return kept, len(texts) - len(kept)


def prepare_data(cfg: DataConfig, ws: Workspace) -> PreparedData:
    """Read and validate `cfg.source`, split it, and save it under `<workspace>/data/<fingerprint>/`."""
    log = reporting.logger()
    dropped: dict[str, int] = {}
    frames = read_source(cfg.source, ws, cfg.hf_revision, quoting=cfg.quoting)
    read = sum(len(f) for f in frames.values())
    frames, labels = _validate_source(frames, cfg, dropped, log)
    frames = _make_splits(frames, labels, cfg, dropped, log)
    if mapped := renamed(labels):  # before any compute: evaluate names its per-class metrics this way
        log.info("labels with characters MLflow metric names cannot hold are logged as: %s", mapped)

    held_out = set(frames["validation"]["text"]) | set(frames["test"]["text"])
    corpus, corpus_dropped = _read_corpus(cfg, ws, frames["train"]["text"].tolist(), held_out)
    if corpus_dropped:
        dropped["corpus texts equal to an evaluation text"] = corpus_dropped

    fingerprint = _fingerprint(frames, corpus, labels)
    result = PreparedData(
        uri=ws.uri("data", fingerprint),
        fingerprint=fingerprint,
        labels=labels,
        sizes={s: len(frames[s]) for s in SPLITS},
        corpus_size=len(corpus),
        dropped=dropped,
        source=cfg.source,
    )
    if not exists(result.splits_uri + "/dataset_dict.json"):
        _save(result, frames, corpus)
    unused = {k: v for k, v in dropped.items() if not k.startswith("corpus")}
    log.info(
        "prepared %s: read %d labeled rows; train %d, validation %d, test %d; dropped %d%s; corpus %d texts -> %s",
        cfg.source,
        read,
        *result.sizes.values(),
        sum(unused.values()),
        f" ({', '.join(f'{k}: {v}' for k, v in dropped.items())})" if dropped else "",
        len(corpus),
        result.uri,
    )
    _report(result, frames)
    return result


def _save(result: PreparedData, frames: dict[str, pd.DataFrame], corpus: list[str]) -> None:
    import datasets  # heavy (~1 s): kept out of preflight_data's imports

    labels = result.labels
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=labels)})
    dd = datasets.DatasetDict(
        {
            s: datasets.Dataset.from_dict(
                {"text": frames[s]["text"].tolist(), "label": [labels.index(v) for v in frames[s]["label"]]},
                features=features,
            )
            for s in SPLITS
        }
    )
    datasets.Dataset.from_dict({"text": corpus}).save_to_disk(result.corpus_uri)
    dd.save_to_disk(result.splits_uri)  # written last: its presence marks the folder complete


def _report(result: PreparedData, frames: dict[str, pd.DataFrame]) -> None:
    rows = [
        {"split": s, "rows": result.sizes[s], **{lab: int((frames[s]["label"] == lab).sum()) for lab in result.labels}}
        for s in SPLITS
    ]
    dropped = "\n".join(f"- {k}: {v}" for k, v in result.dropped.items()) or "- nothing"
    reporting.markdown(
        "prepare-data",
        f"# Prepared data `{result.fingerprint}`\n\nSource `{result.source}` -> `{result.uri}`\n\n"
        f"{reporting.md_table(rows)}\n\nPretraining corpus: {result.corpus_size} texts\n\nDropped:\n{dropped}\n",
        description="Split sizes and label counts",
    )
