"""The prepare_instructions stage: read, validate, split and fingerprint instruction data; save it as Arrow.

Three input shapes: `prompt`/`response` columns (names configurable), chat `messages` (a list of `{role,
content}`; the last message is the assistant's answer the model learns), or Alpaca rows as they come
(`instruction`, optional `input`, `output`: instruction and input become one user turn, separated by a blank
line, and `output` the answer). All are stored as `messages`, so
everything downstream renders them through the tokenizer's chat template. Sources are read by
`tasks.data.prepare.read_source` (file, folder with train/validation/test files, fsspec URL, `hf:`), plus the bundled
`demo:instructions`, `demo:instructions_shifted` and `demo:instructions_corpus`.

Checks before any compute, each naming file, line, field and value: empty prompt or response, unknown roles,
malformed messages, duplicates across splits (a test prompt seen in training inflates the scores), non-UTF-8
files. `on_invalid: drop` drops and counts instead. Samples longer than the model's context can only be
judged with the tokenizer, so that check (`fit_to_context`, policy error / truncate / drop, counted) runs at
the start of instruction tuning, before the first step.

Its result (`PreparedInstructions`, `Messages`) is in `tasks/results.py`; `prompt_key` and the context-length
policy `fit_to_context` in `tasks/kinds/generation/chats.py`; reading the splits back in `tasks/data/loaders.py`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import datasets
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.errors import PipelineInputError
from core.retry import RetryPolicy
from core.workspace import Workspace, exists
from tasks.data.read import read_source, resolve_demo
from tasks.data.three_way_split import three_way_split
from tasks.kinds.generation.chats import prompt_key
from tasks.results.common import SPLITS
from tasks.results.data import PreparedInstructions
from tasks.stage_configs import SplitConfig

ROLES = ("system", "user", "assistant")
ALPACA = ("instruction", "input", "output")  # Alpaca's columns; `input` is optional
_DEMO = {"instructions": "instructions", "instructions_shifted": "instructions_shifted.jsonl"}
_DEMO |= {"instructions_corpus": "instructions_corpus.txt"}


class InstructionDataConfig(BaseModel):
    """Instruction data for tuning and the corpus for pretraining. Defaults: the bundled demo."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        "demo:instructions", description="File, folder (train/validation/test files), fsspec URL, hf: or demo:."
    )
    format: Literal["auto", "prompt_response", "messages", "alpaca"] = Field(
        "auto",
        description="auto: `messages` if that column exists, else prompt/response columns, else Alpaca's "
        "instruction/input/output.",
    )
    prompt_column: str = Field("prompt", description="Column holding the instruction (prompt_response format).")
    response_column: str = Field("response", description="Column holding the answer (prompt_response format).")
    messages_column: str = Field("messages", description="Column holding the chat (messages format).")
    corpus: str | None = Field(
        "demo:instructions_corpus", description="Pretraining text (txt: one text per line); null = the train chats."
    )
    corpus_validation: float = Field(0.05, gt=0, lt=0.5, description="Share of the corpus held out for perplexity.")
    split: SplitConfig = SplitConfig()
    on_invalid: Literal["error", "drop"] = Field("error", description="Stop on bad rows, or drop and count them.")
    max_rows: int | None = Field(None, gt=0, description="Use at most this many training examples (quick runs).")
    retry: RetryPolicy = RetryPolicy(retries=1)


# ---------------------------------------------------------------- reading


def _read(source: str, ws: Workspace) -> dict[str, pd.DataFrame]:
    if source.startswith("demo:") and source.removeprefix("demo:") in _DEMO:
        from tasks.kinds.generation.demo import write_demo_instructions

        source = resolve_demo(source, ws, _DEMO, "demo-generation", write_demo_instructions)
    return read_source(source, ws)


def _plain(value: object) -> object:
    """Parquet gives numpy arrays and CSV gives JSON text where JSONL gives lists: make them lists."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


# ---------------------------------------------------------------- validation


class BadRow(BaseModel):
    what: str
    field: str
    value: object = None
    fix: str


def _check_messages(messages: object, field: str) -> BadRow | None:
    """What is wrong with one chat, or None."""
    if not isinstance(messages, list) or not messages:
        return BadRow(what="not a non-empty list of messages", field=field, value=messages, fix="Give a list")
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return BadRow(what="message without string role and content", field=where, value=m, fix="Fix the message")
        if m["role"] not in ROLES:
            return BadRow(
                what=f"unknown role (use one of {list(ROLES)})", field=f"{where}.role", value=m["role"], fix="Fix it"
            )
        if not m["content"].strip():
            what = "empty response" if m["role"] == "assistant" else f"empty {m['role']} message"
            return BadRow(what=what, field=f"{where}.content", value=m["content"], fix="Fill in or remove the row")
    if messages[-1]["role"] != "assistant":
        return BadRow(
            what="last message is not the assistant's answer",
            field=f"{field}[{len(messages) - 1}].role",
            value=messages[-1]["role"],
            fix="End each chat with the answer to learn",
        )
    if not any(m["role"] == "user" for m in messages[:-1]):
        return BadRow(what="no user message before the answer", field=field, value=messages, fix="Add the question")
    return None


def _as_messages(row: pd.Series, cfg: InstructionDataConfig, fmt: str) -> tuple[object, BadRow | None]:
    if fmt == "messages":
        messages = _plain(row[cfg.messages_column])
        return messages, _check_messages(messages, cfg.messages_column)
    prompt_field, response_field = ALPACA[::2] if fmt == "alpaca" else (cfg.prompt_column, cfg.response_column)
    prompt, response = _text(row[prompt_field]), _text(row[response_field])
    if not prompt.strip():
        return None, BadRow(what="empty prompt", field=prompt_field, value=prompt, fix="Fill in or remove it")
    if not response.strip():
        return None, BadRow(what="empty response", field=response_field, value=response, fix="Fill in or remove")
    if fmt == "alpaca" and (extra := _text(row.get(ALPACA[1])).strip()):  # Alpaca's optional context
        prompt = f"{prompt.rstrip()}\n\n{extra}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], None


def _format(df: pd.DataFrame, cfg: InstructionDataConfig) -> str:
    fmt = cfg.format
    if fmt == "auto":
        fmt = "messages" if cfg.messages_column in df.columns else "prompt_response"
        if fmt == "prompt_response" and cfg.prompt_column not in df.columns and {*ALPACA[::2]} <= {*df.columns}:
            fmt = "alpaca"
    needed = {"messages": [cfg.messages_column], "alpaca": list(ALPACA[::2])}
    needed = needed.get(fmt, [cfg.prompt_column, cfg.response_column])
    for column in needed:
        if column not in df.columns:
            cols = [c for c in df.columns if not c.startswith("_")]
            raise PipelineInputError(
                f"{df['_file'].iloc[0]}: column '{column}' not found (columns: {cols}). Set generation_data."
                f"{'messages_column' if fmt == 'messages' else 'prompt_column / response_column'} to your column."
            )
    return fmt


def _validate(df: pd.DataFrame, cfg: InstructionDataConfig, dropped: dict[str, int]) -> pd.DataFrame:
    """One frame as `messages`, `_file`, `_line`: bad rows stop the run or are dropped and counted."""
    fmt = _format(df, cfg)
    kept = []
    for _, row in df.iterrows():
        messages, bad = _as_messages(row, cfg, fmt)
        if bad is None:
            kept.append({"messages": messages, "_file": row["_file"], "_line": int(row["_line"])})
        elif cfg.on_invalid == "error":
            raise PipelineInputError(
                f"{row['_file']}, line {row['_line']}, field '{bad.field}': {bad.what} (value {bad.value!r}). "
                f"{bad.fix}, or set generation_data.on_invalid=drop to drop and count such rows."
            )
        else:
            dropped[bad.what] = dropped.get(bad.what, 0) + 1
    return pd.DataFrame(kept, columns=["messages", "_file", "_line"])


def _drop_dupes_within(df: pd.DataFrame, dropped: dict[str, int]) -> pd.DataFrame:
    keys = df["messages"].map(prompt_key)
    dup = keys.duplicated()
    if dup.any():
        dropped["duplicate prompts (kept first)"] = dropped.get("duplicate prompts (kept first)", 0) + int(dup.sum())
    return df[~dup]


def _check_across_splits(frames: dict[str, pd.DataFrame], cfg: InstructionDataConfig, dropped: dict) -> None:
    """A prompt in train and in an evaluation split inflates the scores: error, or drop it from the later split."""
    seen: dict[str, tuple[str, int, str]] = {}
    for split in SPLITS:
        df = frames[split]
        keys = df["messages"].map(prompt_key)
        dup = keys.isin(seen)
        if dup.any() and cfg.on_invalid == "error":
            row, key = df[dup].iloc[0], keys[dup].iloc[0]
            f, line, first_split = seen[key]
            prompt = row["messages"][-2]["content"][:60]
            raise PipelineInputError(
                f"{row['_file']}, line {row['_line']}, field 'prompt': the prompt {prompt!r} ({split}) is also in "
                f"{f}, line {line} ({first_split}); {int(dup.sum())} such rows. Remove them or "
                "set generation_data.on_invalid=drop."
            )
        if dup.any():
            dropped[f"duplicated across splits ({split})"] = int(dup.sum())
            frames[split] = df = df[~dup]
        seen |= {k: (fl, ln, split) for k, fl, ln in zip(keys[~dup], df["_file"], df["_line"], strict=True)}


def _split(frames: dict[str, pd.DataFrame], cfg: InstructionDataConfig, dropped: dict) -> dict[str, pd.DataFrame]:
    if "train" not in frames and "all" not in frames:
        raise PipelineInputError(f"source '{cfg.source}' has splits {sorted(frames)} but no 'train'")
    if "all" in frames:
        df = _drop_dupes_within(frames["all"], dropped)
        if len(df) < 10:
            raise PipelineInputError(f"{cfg.source}: {len(df)} valid examples; need at least 10 to split")
        frames = three_way_split(df, cfg.split.validation, cfg.split.test, cfg.split.seed, stratify=None)
    elif missing := [s for s in ("validation", "test") if s not in frames]:  # carved at the sizes a file gets
        split = cfg.split
        carved = three_way_split(frames["train"], split.validation, split.test, split.seed, None, missing)
        frames = {"train": carved["train"], **{s: frames.get(s, carved.get(s)) for s in ("validation", "test")}}
    if cfg.max_rows:
        frames["train"] = frames["train"].iloc[: cfg.max_rows]
    _check_across_splits(frames, cfg, dropped)
    for split in SPLITS:
        if frames[split].empty:
            raise PipelineInputError(f"{cfg.source}: split '{split}' is empty after validation")
    return frames


# ---------------------------------------------------------------- corpus and the stage


def _corpus(cfg: InstructionDataConfig, ws: Workspace, frames: dict[str, pd.DataFrame], dropped: dict) -> list[str]:
    """Pretraining texts; texts that appear in an evaluation chat are removed (they must stay unseen)."""
    held_out = {m["content"] for s in ("validation", "test") for ms in frames[s]["messages"] for m in ms}
    if cfg.corpus is None:
        return ["\n".join(m["content"] for m in ms) for ms in frames["train"]["messages"]]
    df = pd.concat(_read(cfg.corpus, ws).values(), ignore_index=True)
    if "text" not in df.columns:
        raise PipelineInputError(f"{df['_file'].iloc[0]}: the corpus has no 'text' column (txt: one text per line)")
    texts = [t for t in df["text"].map(_text) if t.strip()]
    kept = [t for t in texts if t not in held_out]
    if len(texts) - len(kept):
        dropped["corpus texts equal to an evaluation text"] = len(texts) - len(kept)
    if len(kept) < 2:
        raise PipelineInputError(f"pretraining corpus '{cfg.corpus}' has {len(kept)} non-empty texts; need 2")
    return kept


def _fingerprint(frames: dict[str, pd.DataFrame], corpus: list[str]) -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        for messages in frames[split]["messages"]:
            h.update(f"{split}\x1f{json.dumps(messages, sort_keys=True)}\x1e".encode())
    for text in corpus:
        h.update(f"corpus\x1f{text}\x1e".encode())
    return h.hexdigest()[:16]


def _save(result: PreparedInstructions, frames: dict[str, pd.DataFrame], corpus: list[str], n_val: int) -> None:
    if exists(result.splits_uri + "/dataset_dict.json"):
        return
    features = datasets.Features(
        {
            "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "_file": datasets.Value("string"),
            "_line": datasets.Value("int64"),
        }
    )
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_pandas(frames[s], features=features, preserve_index=False) for s in SPLITS}
    )
    corpus_dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": corpus[n_val:]}),
            "validation": datasets.Dataset.from_dict({"text": corpus[:n_val]}),
        }
    )
    corpus_dd.save_to_disk(result.corpus_uri)
    dd.save_to_disk(result.splits_uri)  # written last: its presence marks the folder complete


def prepare_instructions(cfg: InstructionDataConfig, ws: Workspace) -> PreparedInstructions:
    """Read and validate `cfg.source` and `cfg.corpus`; save them under `<workspace>/generation-data/<fingerprint>/`."""
    dropped: dict[str, int] = {}
    frames = {k: _validate(v, cfg, dropped) for k, v in _read(cfg.source, ws).items()}
    frames = _split(frames, cfg, dropped)
    corpus = _corpus(cfg, ws, frames, dropped)
    n_val = max(1, int(len(corpus) * cfg.corpus_validation))
    fingerprint = _fingerprint(frames, corpus)
    result = PreparedInstructions(
        uri=ws.uri("generation-data", fingerprint),
        fingerprint=fingerprint,
        sizes={s: len(frames[s]) for s in SPLITS},
        corpus_sizes={"train": len(corpus) - n_val, "validation": n_val},
        dropped=dropped,
        source=cfg.source,
    )
    _save(result, frames, corpus, n_val)
    reporting.logger().info(
        "prepared %s: %s chats, corpus %s texts, dropped %s -> %s",
        cfg.source,
        result.sizes,
        result.corpus_sizes,
        dropped or "nothing",
        result.uri,
    )
    rows = [{"split": s, "chats": result.sizes[s]} for s in SPLITS]
    rows += [{"split": f"corpus {s}", "chats": n} for s, n in result.corpus_sizes.items()]
    dropped_md = "\n".join(f"- {k}: {v}" for k, v in dropped.items()) or "- nothing"
    reporting.markdown(
        "prepare-instructions",
        f"# Instruction data `{fingerprint}`\n\n`{cfg.source}` -> `{result.uri}`\n\n{reporting.md_table(rows)}\n\n"
        f"Dropped:\n{dropped_md}\n",
    )
    return result
