"""`detect_generation_drift`: the drift computation on one window of a generator's traffic, like `detect.py`.

Signals are in `generation_signals.py`; the verdict is the classifier's (`policy.decide`): the share of fired
signals, or a quality drop alone. Quality is chrF (sacrebleu, `tasks/judging/scoring.py`) of the champion's answers on
the window's rows that carry a reference answer (the log's `true_label`, or a `reference` column of a window
file) against its chrF on held-out reference prompts; exact match is reported beside it. The champion's view of
its held-out prompts (answers, embeddings) is the same for every window, so it is computed once per version and
kept in the workspace.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from core.fingerprint import hash_json
from core.workspace import Workspace
from models.generator import TextGenerator
from tasks.judging.scoring import score_answers
from tasks.monitoring.config import MonitorConfig, sample_rows
from tasks.monitoring.generation_reference import load_chat_reference, with_references
from tasks.monitoring.generation_signals import PROMPT_SIGNALS, RESPONSE_SIGNALS, prompts_report, responses_report
from tasks.monitoring.generation_view import model_frame
from tasks.monitoring.policy import Accuracy, DriftPolicy, decide, too_small
from tasks.monitoring.reports import ReportAbout, heading
from tasks.monitoring.results import DriftReport, Signal
from tasks.monitoring.signals import signals_from
from tasks.results.registry import Champion

MAX_NEW_TOKENS = 48  # answers generated for reference prompts, as `evaluate_generation.max_new_tokens` defaults


def _reference_view(
    cfg: MonitorConfig, gen: TextGenerator, reference: dict[str, pd.DataFrame], cache: Path | None
) -> tuple[pd.DataFrame, int]:
    """The champion's answers and embeddings on up to `model_rows` held-out prompts (cached per version)."""
    pool = pd.concat([reference["validation"], reference["test"]], ignore_index=True)
    sample = sample_rows(pool, cfg.model_rows, cfg.seed)
    path = cache / f"reference-{hash_json(sample['text'].tolist(), MAX_NEW_TOKENS)}.parquet" if cache else None
    if path is not None and path.exists():
        return pd.read_parquet(path), len(pool)
    frame = model_frame(gen, sample, MAX_NEW_TOKENS, None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
    return frame, len(pool)


def chrf_drop_threshold(configured: float, ref_scores: pd.Series, cur_scores: pd.Series) -> float:
    """`configured` (a share of chrF's 0-100 range), raised to the drop chance exceeds 1% of the time at these
    sizes (sentence chrF's spread), as `policy.drop_threshold` does for accuracy."""
    spread = math.sqrt(ref_scores.var(ddof=1) / len(ref_scores) + cur_scores.var(ddof=1) / len(cur_scores))
    return max(100 * configured, 2.326 * (spread if math.isfinite(spread) else 0.0))


def quality_signal(policy: DriftPolicy, ref: pd.DataFrame, cur: pd.DataFrame, labeled: int) -> Accuracy:
    """chrF of the answers on the window's referenced rows against chrF on held-out reference prompts."""
    import sacrebleu

    known = cur[cur["reference"].notna()]
    if len(known) < policy.min_labeled_rows:
        skipped = f"quality: {len(known)} rows with a reference answer, fewer than policy.min_labeled_rows=" + str(
            policy.min_labeled_rows
        )
        return Accuracy(skipped=skipped if labeled else None)
    now = score_answers(known["response"].tolist(), known["reference"].tolist())
    before = score_answers(ref["response"].tolist(), ref["reference"].tolist())

    def sentences(df: pd.DataFrame) -> pd.Series:
        pairs = zip(df["response"], df["reference"], strict=True)
        return pd.Series([sacrebleu.sentence_chrf(a, [r]).score for a, r in pairs])

    drop = before.chrf - now.chrf
    threshold = chrf_drop_threshold(policy.max_accuracy_drop, sentences(ref), sentences(known))
    signal = Signal(
        name="chrf",
        group="performance",
        method="chrF drop vs held-out reference",
        score=drop,
        threshold=threshold,
        fired=drop > threshold,
        detail=f"chrF {now.chrf:.2f} (exact match {now.exact_match:.4f}) on {len(known)} rows with a reference "
        f"vs {before.chrf:.2f} (exact match {before.exact_match:.4f}) on {len(ref)} held-out reference prompts",
    )
    return Accuracy(signal=signal, accuracy=now.chrf, reference_accuracy=before.chrf)


def detect_generation_drift(
    cfg: MonitorConfig,
    reference: dict[str, pd.DataFrame],
    window: pd.DataFrame,
    gen: TextGenerator,
    out_dir: Path,
    version: str | None = None,
    about: ReportAbout | None = None,
    cache: Path | None = None,
) -> DriftReport:
    """Signals, verdict and the HTML reports (`inputs.html`, `model.html`) in `out_dir`; `cache` keeps the
    champion's view of its held-out prompts between windows."""
    policy, about = cfg.policy, about or ReportAbout(model_version=version or "")
    window = with_references(window)
    labeled = int(window["true_label"].notna().sum())
    if small := too_small(policy, len(window), labeled):
        return small
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = pd.concat([reference["train"], reference["validation"]], ignore_index=True)
    ref_in = sample_rows(pool, cfg.sample_rows, cfg.seed).rename(columns={"text": "prompt"})
    cur_in = sample_rows(window, cfg.sample_rows, cfg.seed).rename(columns={"text": "prompt"})
    what = "the champion's train + validation prompts"
    title, text = heading(about, "Prompt drift", what, len(pool), len(ref_in), len(cur_in), len(window))
    snapshot = prompts_report(cfg, ref_in, cur_in, title, text)
    snapshot.save_html(str(out_dir / "inputs.html"))
    signals = signals_from(snapshot, PROMPT_SIGNALS)

    ref_out, pool_rows = _reference_view(cfg, gen, reference, cache)
    cur_out = model_frame(gen, sample_rows(window, cfg.model_rows, cfg.seed), MAX_NEW_TOKENS, version)
    what = "the champion's answers to its held-out validation + test prompts"
    title, text = heading(about, "Answer and embedding drift", what, pool_rows, len(ref_out), len(cur_out), len(window))
    snapshot = responses_report(cfg, ref_out, cur_out, title, text)
    snapshot.save_html(str(out_dir / "model.html"))
    signals += signals_from(snapshot, RESPONSE_SIGNALS)

    quality = quality_signal(policy, ref_out, cur_out, labeled)
    signals += [quality.signal] if quality.signal else []
    status, reasons, share = decide(policy, signals, quality, metric="chrF")
    return DriftReport(
        status=status,
        reasons=reasons,
        window_rows=len(window),
        labeled_rows=labeled,
        signals=signals,
        drift_share=share,
        quality={"chrf": quality.accuracy, "reference_chrf": quality.reference_accuracy} if quality.signal else {},
        samples={
            "reference_inputs": len(ref_in),
            "current_inputs": len(cur_in),
            "reference_model": len(ref_out),
            "current_model": len(cur_out),
        },
        skipped=[quality.skipped] if quality.skipped else [],
        reports=["inputs.html", "model.html"],
    )


def detect_for_champion(
    cfg: MonitorConfig, champion: Champion, window: pd.DataFrame, out_dir: Path, about: ReportAbout, ws: Workspace
) -> DriftReport:
    """`detect_generation_drift` for a registered generator; what `check_drift` calls for `task: generation`."""
    gen = TextGenerator(champion.model_dir)
    cache = ws.local_dir("monitor-cache", champion.name, champion.version)
    reference = load_chat_reference(champion.data_uri)
    return detect_generation_drift(cfg, reference, window, gen, out_dir, champion.version, about, cache)
