"""Stage 1, prepare_data: read, validate, split and fingerprint the data; save it as Arrow.

Sources: a local file or fsspec URL (csv, tsv, jsonl, parquet, txt), a folder of them (files
named train/validation/test keep their split), a Hugging Face dataset (`hf:<name>[:<config>]`),
or the bundled demo data (`demo:reviews`, `demo:reviews_shifted`, `demo:corpus`).

Every check runs before any compute is spent, and each error names the file, line, column and
an example value. Policy for bad rows: `on_invalid: error` (default) stops; `on_invalid: drop`
drops them and counts them in the summary. Exact duplicate texts within the data are always
dropped before splitting (counted), so no text can land in two splits by chance; duplicates
across splits the source itself defines are treated as bad rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import datasets
import fsspec
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import train_test_split

from tasks import reporting
from tasks.errors import PipelineInputError
from tasks.orchestration import RetryPolicy
from tasks.storage import publish_dir
from tasks.workspace import Workspace, exists

SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "val": "validation",
    "test": "test",
}
_TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}
_DEMO_FILES = {"reviews": "reviews.csv", "reviews_shifted": "reviews_shifted.csv", "corpus": "corpus.txt"}


class SplitConfig(BaseModel):
    """How to split a source that has no splits of its own (stratified by label)."""

    model_config = ConfigDict(extra="forbid")

    validation: float = Field(0.1, gt=0, lt=0.5)
    test: float = Field(0.15, gt=0, lt=0.5)
    seed: int = 42


class DataConfig(BaseModel):
    """Which data to train on and how to read it. Defaults: the bundled demo reviews."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("demo:reviews", description="File, folder, fsspec URL, hf:<name>[:<config>] or demo:<name>.")
    text_column: str = Field("review", description="Column holding the text.")
    label_column: str = Field("sentiment", description="Column holding the label.")
    labels: list[str] | None = Field(None, description="Allowed labels, in order; default: those found in train.")
    corpus: str | None = Field(
        "demo:corpus", description="Unlabeled pretraining corpus (txt: one text per line); default: train texts."
    )
    hf_revision: str | None = Field(None, description="Dataset revision (tag/commit) for hf: sources.")
    split: SplitConfig = SplitConfig()
    on_invalid: Literal["error", "drop"] = Field("error", description="Stop on bad rows, or drop and count them.")
    max_rows: int | None = Field(None, gt=0, description="Use at most this many labeled rows (quick runs).")
    retry: RetryPolicy = RetryPolicy(retries=1)


class PreparedData(BaseModel):
    """What the next stages need: where the Arrow data is, and what is in it."""

    uri: str
    fingerprint: str
    labels: list[str]
    sizes: dict[str, int]
    corpus_size: int
    dropped: dict[str, int]
    source: str

    @property
    def splits_uri(self) -> str:
        return self.uri.rstrip("/") + "/splits"

    @property
    def corpus_uri(self) -> str:
        return self.uri.rstrip("/") + "/corpus"


# ---------------------------------------------------------------- reading


def _check_utf8(path: str) -> None:
    """Name the line of the first undecodable byte; pandas would only say 'codec can't decode'."""
    with fsspec.open(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PipelineInputError(
            f"{path}: undecodable bytes at line {line} (byte offset {e.start}, {raw[e.start : e.start + 4]!r}): "
            "not valid UTF-8. Re-save the file as UTF-8."
        ) from None


def _read_file(path: str) -> pd.DataFrame:
    """One file as a DataFrame of strings, with a `_line` column (line number in the file)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise PipelineInputError(f"{path}: unsupported file type '{suffix}'; use one of {sorted(_TABLE_SUFFIXES)}")
    if suffix != ".parquet":
        _check_utf8(path)
    first_line = 2  # header line is 1
    if suffix in (".csv", ".tsv"):
        df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    elif suffix in (".jsonl", ".json"):
        df = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        first_line = 1
    elif suffix == ".parquet":
        df = pd.read_parquet(path)
        first_line = 1
    else:  # .txt: one text per line, for corpora
        with fsspec.open(path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
        df = pd.DataFrame({"text": lines})
        first_line = 1
    df["_line"] = range(first_line, first_line + len(df))
    df["_file"] = path
    return df


def _list_files(source: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(source)
    if not fs.exists(path):
        raise PipelineInputError(f"data source '{source}' does not exist")
    if fs.isdir(path):
        files = sorted(p for p in fs.ls(path, detail=False) if Path(p).suffix.lower() in _TABLE_SUFFIXES)
        if not files:
            raise PipelineInputError(f"folder '{source}' holds no {sorted(_TABLE_SUFFIXES)} files")
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        return [f if protocol in ("file", "local") else f"{protocol}://{f}" for f in files]
    return [source]


def _resolve_demo(source: str, ws: Workspace) -> str:
    """`demo:<name>` -> the generated demo file in the workspace (written on first use)."""
    from tasks.demo_data import write_demo_data

    name = source.removeprefix("demo:")
    if name not in _DEMO_FILES:
        raise PipelineInputError(f"unknown demo data '{source}'; use one of {[f'demo:{n}' for n in _DEMO_FILES]}")
    folder = ws.uri("demo")
    if not exists(ws.uri("demo", _DEMO_FILES[name])):
        local = ws.local_dir("demo")  # the workspace's own folder when it is local
        write_demo_data(local)
        publish_dir(local, folder)
    return ws.uri("demo", _DEMO_FILES[name])


def read_source(source: str, ws: Workspace, revision: str | None = None) -> dict[str, pd.DataFrame]:
    """Read a source into frames keyed by split ('all' when the source has no splits)."""
    if source.startswith("demo:"):
        source = _resolve_demo(source, ws)
    if source.startswith("hf:"):
        name, _, config = source.removeprefix("hf:").partition(":")
        # The real hub code path; offline machines never take it (the tests use local files).
        ds = datasets.load_dataset(name, config or None, revision=revision)
        frames = {}
        for split_name, split in ds.items():
            df = split.to_pandas()
            df["_line"], df["_file"] = range(1, len(df) + 1), f"{source}[{split_name}]"
            frames[_SPLIT_ALIASES.get(split_name, split_name)] = df
        return frames
    files = _list_files(source)
    by_split: dict[str, list[pd.DataFrame]] = {}
    for path in files:
        split = _SPLIT_ALIASES.get(Path(path).stem.lower()) if len(files) > 1 else None
        by_split.setdefault(split or "all", []).append(_read_file(path))
    if "all" in by_split and len(by_split) > 1:
        named = sorted(k for k in by_split if k != "all")
        raise PipelineInputError(
            f"folder '{source}' mixes split files ({named}) with other files; keep only train/validation/test files"
        )
    return {k: pd.concat(v, ignore_index=True) for k, v in by_split.items()}


# ---------------------------------------------------------------- validation


def _where(df: pd.DataFrame, column: str) -> str:
    row = df.iloc[0]
    return f"{row['_file']}, line {row['_line']}, column '{column}'"


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
            f"{_where(bad, shown)}: {what} (value {example!r}; {int(mask.sum())} such rows). "
            f"{fix} or set data.on_invalid=drop to drop and count them."
        )
    dropped[what] = dropped.get(what, 0) + int(mask.sum())
    return df[~mask]


def _as_str(value: object) -> str:
    """Cell to string; None/NaN (missing in JSON or Parquet) become '' so they are caught as missing."""
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _validate_frame(df: pd.DataFrame, cfg: DataConfig, labels: list[str] | None, dropped: dict) -> pd.DataFrame:
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
    df = _bad_rows(
        df,
        df["text"].str.strip() == "",
        "empty or whitespace-only text",
        "text",
        "Fill in or remove those rows",
        cfg,
        dropped,
    )
    df = _bad_rows(df, df["label"].str.strip() == "", "missing label", "label", "Label those rows", cfg, dropped)
    if labels is not None:
        df = _bad_rows(
            df,
            ~df["label"].isin(labels),
            f"label not one of {labels}",
            "label",
            "Fix the label or add it to data.labels",
            cfg,
            dropped,
        )
    return df


def _split(df: pd.DataFrame, cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    """Deterministic stratified train/validation/test split."""
    counts = df["label"].value_counts()
    if (counts < 3).any():
        rare = counts[counts < 3].index[0]
        raise PipelineInputError(
            f"label '{rare}' has only {counts[rare]} example(s); need at least 3 to split into train/validation/test"
        )
    rest, test = train_test_split(df, test_size=cfg.test, random_state=cfg.seed, stratify=df["label"])
    train, val = train_test_split(
        rest, test_size=cfg.validation / (1 - cfg.test), random_state=cfg.seed, stratify=rest["label"]
    )
    return {"train": train, "validation": val, "test": test}


def _drop_cross_split_duplicates(frames: dict[str, pd.DataFrame], cfg: DataConfig, dropped: dict) -> None:
    """A text in train and in an evaluation split inflates the metrics: error, or drop it from the eval split."""
    seen = frames["train"].set_index("text")
    for split in ("validation", "test"):
        df = frames[split]
        dup = df["text"].isin(seen.index)
        if dup.any() and cfg.on_invalid == "error":
            row = df[dup].iloc[0]
            first = seen.loc[[row["text"]]].iloc[0]
            raise PipelineInputError(
                f"text {row['text'][:60]!r} is in {first['_file']} line {first['_line']} (train) and in "
                f"{row['_file']} line {row['_line']} ({split}); {int(dup.sum())} such rows. A test example seen in "
                "training inflates the metrics: remove them or set data.on_invalid=drop."
            )
        if dup.any():
            dropped[f"duplicated across splits ({split})"] = int(dup.sum())
            frames[split] = df[~dup]
        seen = pd.concat([seen, frames[split].set_index("text")])


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
    frames = read_source(cfg.corpus, ws)
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
    frames = read_source(cfg.source, ws, cfg.hf_revision)

    has_splits = "train" in frames
    if not has_splits and "all" not in frames:
        raise PipelineInputError(f"source '{cfg.source}' has splits {sorted(frames)} but no 'train'")
    labels = cfg.labels
    first = frames["train"] if has_splits else frames["all"]
    first = _validate_frame(first, cfg, labels, dropped)
    labels = labels or sorted(first["label"].unique())
    if len(labels) < 2:
        raise PipelineInputError(f"{cfg.source}: column '{cfg.label_column}' has a single label {labels}; need two")

    if has_splits:
        frames = {k: _validate_frame(v, cfg, labels, dropped) if k != "train" else first for k, v in frames.items()}
        if "validation" not in frames or "test" not in frames:
            # Carve the missing evaluation split(s) out of train, stratified.
            carved = _split(frames["train"], cfg.split)
            frames = {s: frames.get(s, carved[s]) if s != "train" else carved["train"] for s in SPLITS}
    else:
        n = len(first)
        first = first.drop_duplicates("text")
        if n - len(first):
            dropped["duplicate texts (kept first)"] = n - len(first)
        if cfg.max_rows:
            first = first.sample(n=min(cfg.max_rows, len(first)), random_state=cfg.split.seed)
        frames = _split(first, cfg.split)
    _drop_cross_split_duplicates(frames, cfg, dropped)
    for split in SPLITS:
        if frames[split].empty:
            raise PipelineInputError(f"{cfg.source}: split '{split}' is empty after validation")

    held_out = set(frames["validation"]["text"]) | set(frames["test"]["text"])
    corpus, corpus_dropped = _read_corpus(cfg, ws, frames["train"]["text"].tolist(), held_out)
    if corpus_dropped:
        dropped["corpus texts equal to an evaluation text"] = corpus_dropped

    fingerprint = _fingerprint(frames, corpus, labels)
    uri = ws.uri("data", fingerprint)
    result = PreparedData(
        uri=uri,
        fingerprint=fingerprint,
        labels=labels,
        sizes={s: len(frames[s]) for s in SPLITS},
        corpus_size=len(corpus),
        dropped=dropped,
        source=cfg.source,
    )
    if not exists(result.splits_uri + "/dataset_dict.json"):
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
    log.info(
        "prepared %s: %s, corpus %d texts, dropped %s -> %s",
        cfg.source,
        result.sizes,
        len(corpus),
        dropped or "nothing",
        uri,
    )
    _report(result, frames)
    return result


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


def load_splits(data: PreparedData) -> datasets.DatasetDict:
    return datasets.load_from_disk(data.splits_uri)


def load_corpus(data: PreparedData) -> datasets.Dataset:
    return datasets.load_from_disk(data.corpus_uri)
