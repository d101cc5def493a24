"""`detect_for_champion` for a question answerer: the drift computation on one window of its traffic, like
`entity_detect.py`.

Each question becomes one row of descriptors (`tasks/kinds/answers/monitor.py`): question and answer length in
characters, whether it was left unanswered, and the answer's score (`model.html`); context length is one row per
distinct context (`contexts.html`), since many questions share a context (COVID-QA: ~14 an article) and a test that
counted each copy would fire on same-distribution windows (it did, at p = 0.0005, on 20 against 24 contexts asked 3
questions each). The window's rows are compared with the champion's own answers to its held-out validation + test
questions (held out: on its training questions a reader is more confident and answers more often, a gap that would
fire on every window), one Evidently `ValueDrift` test per column; the verdict is the classifier's
(`policy.decide`). Both sides are answered by the champion's PyTorch weights, so a served int8 graph's small score
shifts are no drift. Served questions carry no gold answers, so there is no quality signal.

A window row's context is its `context` column (a window file of questions and contexts) or, for the prediction
log, the context the service logged with its answer (`serving/answers_api.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd

from core.errors import PipelineInputError
from core.workspace import Workspace, join
from tasks.kinds.answers.monitor import COLUMNS, descriptors
from tasks.kinds.answers.reader import QAExample
from tasks.monitoring.config import MonitorConfig, sample_rows
from tasks.monitoring.policy import Accuracy, decide, too_small
from tasks.monitoring.reports import ReportAbout, descriptors_report, heading
from tasks.monitoring.results import DriftReport
from tasks.monitoring.signals import signals_from
from tasks.results.registry import Champion

INPUTS = ("question_chars", "context_chars")  # what users send; the rest is what the champion makes of it
PER_QUESTION = [c for c in COLUMNS if c != "context_chars"]


def _logged_context(probs) -> str:
    try:
        logged = json.loads(probs) if isinstance(probs, str) else {}
    except json.JSONDecodeError:
        return ""
    return logged.get("context", "") if isinstance(logged, dict) else ""


def window_pairs(window: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """`question` + `context` of each window row that has both, and how many rows had no context."""
    if "context" in window.columns:
        contexts = window["context"].map(lambda c: c if isinstance(c, str) else "")
    elif "probs" in window.columns:
        contexts = window["probs"].map(_logged_context)
    else:
        contexts = pd.Series([""] * len(window), index=window.index)
    pairs = pd.DataFrame({"question": window["text"].astype(str), "context": contexts})
    keep = pairs["question"].str.strip().ne("") & pairs["context"].str.strip().ne("")
    return pairs[keep].reset_index(drop=True), int((~keep).sum())


def answer_rows(reader, pairs: pd.DataFrame) -> pd.DataFrame:
    """The descriptors of the reader's answers to each (question, context) row."""
    if pairs.empty:
        return pd.DataFrame(columns=COLUMNS)
    questions, contexts = pairs["question"].tolist(), pairs["context"].tolist()
    spans = reader.spans(questions, contexts)
    examples = [QAExample(str(i), q, c) for i, (q, c) in enumerate(zip(questions, contexts, strict=True))]
    return descriptors(examples, {ex.id: s.response() for ex, s in zip(examples, spans, strict=True)})


def context_rows(pairs: pd.DataFrame) -> pd.DataFrame:
    """`context_chars` once per distinct context."""
    return pd.DataFrame({"context_chars": [len(c) for c in pairs["context"].drop_duplicates()]})


def _compare(cfg: MonitorConfig, about: ReportAbout, out_dir: Path, sides: dict, pool: int, window_rows: int):
    """The two reports (per question, per distinct context), saved, and their signals."""
    (ref_pairs, ref), (cur_pairs, cur) = sides["reference"], sides["current"]
    what = "the champion's answers to its held-out validation + test questions"
    title, text = heading(about, "Answer drift", what, pool, len(ref), len(cur), window_rows)
    by_question = descriptors_report(cfg, ref[PER_QUESTION], cur[PER_QUESTION], title, text)
    ref_ctx, cur_ctx = context_rows(ref_pairs), context_rows(cur_pairs)
    what = "the distinct contexts of the champion's held-out questions (one row per distinct context)"
    title, text = heading(about, "Context drift", what, len(ref_ctx), len(ref_ctx), len(cur_ctx), len(cur_ctx))
    by_context = descriptors_report(cfg, ref_ctx, cur_ctx, title, text)
    by_question.save_html(str(out_dir / "model.html"))
    by_context.save_html(str(out_dir / "contexts.html"))
    groups = {c: (c, "inputs" if c in INPUTS else "model") for c in COLUMNS}
    signals = signals_from(by_question, groups) + signals_from(by_context, groups)
    return signals, {"reference_model": len(ref), "current_model": len(cur), "reference_contexts": len(ref_ctx),
                     "current_contexts": len(cur_ctx)}  # fmt: skip


def held_out(data_uri: str) -> pd.DataFrame:
    """The champion's validation + test questions with their contexts."""
    dd = datasets.load_from_disk(join(data_uri, "splits"))
    return pd.concat([dd[s].select_columns(["question", "context"]).to_pandas() for s in ("validation", "test")])


def detect_for_champion(
    cfg: MonitorConfig, champion: Champion, window: pd.DataFrame, out_dir: Path, about: ReportAbout, ws: Workspace
) -> DriftReport:
    """Descriptor drift of a registered question answerer's window (`ModelKind.detect_drift`); the reports are
    `model.html` (per question) and `contexts.html` (per distinct context)."""
    from models.span_reader import SpanReader

    policy = cfg.policy
    if small := too_small(policy, len(window), 0):
        return small
    pairs, no_context = window_pairs(sample_rows(window, cfg.model_rows, cfg.seed))
    if pairs.empty:
        raise PipelineInputError(
            f"none of the window's {len(window)} rows has a question and a context: a window file needs `text` "
            "(the question) and `context` columns; prediction log rows carry the context the service logged"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = SpanReader.load(champion.model_dir)
    reader.batch_size = cfg.batch_size
    pool = held_out(champion.data_uri)
    ref_pairs = sample_rows(pool, cfg.model_rows, cfg.seed)
    sides = {"reference": (ref_pairs, answer_rows(reader, ref_pairs)), "current": (pairs, answer_rows(reader, pairs))}
    signals, samples = _compare(cfg, about, out_dir, sides, len(pool), len(window))
    status, reasons, share = decide(policy, signals, Accuracy(skipped="served questions carry no gold answers"))
    skipped = ["quality: served questions carry no gold answers"]
    if no_context:
        skipped.append(f"{no_context} sampled window rows without a question or a context")
    return DriftReport(
        status=status,
        reasons=reasons,
        window_rows=len(window),
        labeled_rows=0,
        signals=signals,
        drift_share=share,
        samples=samples,
        skipped=skipped,
        reports=["model.html", "contexts.html"],
    )
