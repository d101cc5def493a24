"""`detect_drift`: the whole drift computation on one window, without MLflow or Prefect.

Signals and their references are in `signals.py`, the verdict in `policy.py`. Statistics that do not
need every row see a seeded sample (`sample_rows` per side for inputs, `model_rows` for the model,
which needs a forward pass); the report says how many rows each saw. A window below `policy.min_rows`
is `insufficient_data`, never "no drift".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.workspace import Workspace
from models.classifier import TextClassifier
from tasks.monitoring.champion import load_reference
from tasks.monitoring.config import MonitorConfig, sample_rows
from tasks.monitoring.model_view import with_model_outputs
from tasks.monitoring.policy import accuracy_signal, decide, too_small
from tasks.monitoring.reports import ReportAbout, heading
from tasks.monitoring.results import DriftReport, Signal
from tasks.monitoring.signals import INPUT_SIGNALS, MODEL_SIGNALS, inputs_report, model_report, signals_from
from tasks.results.registry import Champion


def _input_signals(
    cfg: MonitorConfig, reference: dict[str, pd.DataFrame], window: pd.DataFrame, out_dir: Path, about: ReportAbout
) -> tuple[list[Signal], list[str], dict[str, int]]:
    """Text, descriptors and true labels, on up to `sample_rows` rows per side, against train + validation."""
    policy, labeled = cfg.policy, int(window["true_label"].notna().sum())
    pool = pd.concat([reference["train"], reference["validation"]], ignore_index=True)
    ref, cur = (
        sample_rows(pool, cfg.sample_rows, cfg.seed),
        sample_rows(window[["text", "true_label"]], cfg.sample_rows, cfg.seed),
    )
    with_labels = int(cur["true_label"].notna().sum()) >= policy.min_labeled_rows
    skipped = []
    if not with_labels and labeled:
        skipped.append(
            f"label drift: {labeled} labeled rows, fewer than policy.min_labeled_rows={policy.min_labeled_rows}"
        )
    reference_text = "the champion's train + validation splits"
    title, text = heading(about, "Input drift", reference_text, len(pool), len(ref), len(cur), len(window))
    snapshot = inputs_report(cfg, ref, cur, with_labels, title, text)
    snapshot.save_html(str(out_dir / "inputs.html"))
    return signals_from(snapshot, INPUT_SIGNALS), skipped, {"reference_inputs": len(ref), "current_inputs": len(cur)}


def _model_frames(
    cfg: MonitorConfig, reference: dict[str, pd.DataFrame], window: pd.DataFrame, clf: TextClassifier, version
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The champion's outputs on up to `model_rows` held-out reference rows and window rows (forward passes)."""
    pool = pd.concat([reference["validation"], reference["test"]], ignore_index=True)
    ref = with_model_outputs(clf, sample_rows(pool, cfg.model_rows, cfg.seed), cfg.batch_size, None)
    cur = with_model_outputs(clf, sample_rows(window, cfg.model_rows, cfg.seed), cfg.batch_size, version)
    return ref, cur, len(pool)


def detect_drift(
    cfg: MonitorConfig,
    reference: dict[str, pd.DataFrame],
    window: pd.DataFrame,
    clf: TextClassifier,
    out_dir: Path,
    version: str | None = None,
    about: ReportAbout | None = None,
) -> DriftReport:
    """Signals, verdict, and the HTML reports (`inputs.html`, `model.html`) in `out_dir`.

    `reference` holds the champion's splits (`load_reference`), `window` comes from `load_window`;
    `version` is the champion's, so that predictions it logged itself are used as they were served;
    `about` names model, window and reference in each report's header.
    """
    policy, about = cfg.policy, about or ReportAbout(model_version=version or "")
    labeled = int(window["true_label"].notna().sum())
    if small := too_small(policy, len(window), labeled):
        return small
    out_dir.mkdir(parents=True, exist_ok=True)
    signals, skipped, samples = _input_signals(cfg, reference, window, out_dir, about)

    ref_out, cur_out, pool_rows = _model_frames(cfg, reference, window, clf, version)
    reference_text = "the champion's held-out validation + test splits"
    title, text = heading(about, "Model drift", reference_text, pool_rows, len(ref_out), len(cur_out), len(window))
    snapshot = model_report(cfg, ref_out, cur_out, title, text)
    snapshot.save_html(str(out_dir / "model.html"))
    signals += signals_from(snapshot, MODEL_SIGNALS)

    accuracy = accuracy_signal(policy, ref_out, cur_out, labeled)
    signals += [accuracy.signal] if accuracy.signal else []
    skipped += [accuracy.skipped] if accuracy.skipped else []
    status, reasons, share = decide(policy, signals, accuracy)
    return DriftReport(
        status=status,
        reasons=reasons,
        window_rows=len(window),
        labeled_rows=labeled,
        signals=signals,
        drift_share=share,
        accuracy=accuracy.accuracy,
        reference_accuracy=accuracy.reference_accuracy,
        samples={**samples, "reference_model": len(ref_out), "current_model": len(cur_out)},
        skipped=skipped,
        reports=["inputs.html", "model.html"],
    )


def detect_for_champion(
    cfg: MonitorConfig, champion: Champion, window: pd.DataFrame, out_dir: Path, about: ReportAbout, ws: Workspace
) -> DriftReport:
    """`detect_drift` for a registered classifier, against its training data (`ModelKind.detect_drift`)."""
    reference = load_reference(champion.data_uri)
    return detect_drift(cfg, reference, window, TextClassifier(champion.model_dir), out_dir, champion.version, about)
