"""How does a drift check scale? `detect_drift` for 1k, 10k and 100k current rows against a same-size reference.

Everything the monitor computes (tasks/monitoring/detect.py) is in the timing: text drift (domain
classifier), two text descriptors, the champion's predictions and confidence, the share of words its
tokenizer splits, its embeddings, label drift and accuracy (the window is labeled), and both HTML
reports. Statistics that do not need every row see a seeded sample (MonitorConfig.sample_rows /
model_rows per side), which is why time grows slower than the rows; reading the window from the
prediction log touches every row and is timed on its own.

The model is the tiny preset's shape with random weights (the timing does not depend on the
weights); reviews are the demo's, drawn with replacement to reach 100k.

    python bench/drift.py [--sizes 1000 10000 100000] [--unsampled-up-to 100000]

`--unsampled-up-to` also times, side by side, the input statistics on every row (sample_rows as large
as the window) for the sizes up to that: what the sampling saves.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import SCRATCH  # noqa: E402  (sets the environment before Prefect loads)


def tiny_classifier(ws, labels: list[str]):
    """The tiny preset's encoder shape with a classification head and a WordPiece vocabulary from the demo."""
    from transformers import BertForSequenceClassification

    from models.classifier import TextClassifier
    from models.encoder import EncoderShape
    from tasks.data.loaders import load_tokenizer
    from tasks.data.prepare import DataConfig, prepare_data
    from tasks.training.tokenizer import TokenizerConfig, train_tokenizer

    data = prepare_data(DataConfig(), ws)
    tokenizer = load_tokenizer(train_tokenizer(TokenizerConfig(vocab_size=3000), data, ws))
    config = EncoderShape(intermediate_size=768).to_bert_config(
        len(tokenizer),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )
    out = Path(ws.root, "bench-model")
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return TextClassifier(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--unsampled-up-to", type=int, default=100_000)
    args = parser.parse_args()

    import pandas as pd
    import torch

    from core.prediction_log import append_predictions, read_window
    from core.workspace import Workspace
    from tasks.data.demo import write_demo_data
    from tasks.monitoring.config import MonitorConfig
    from tasks.monitoring.detect import detect_drift

    ws = Workspace(root=str(SCRATCH / "drift")).resolved()
    paths = write_demo_data(ws.uri("demo"))
    base = pd.read_csv(paths.reviews).rename(columns={"review": "text", "sentiment": "true_label"})
    shifted = pd.read_csv(paths.reviews_shifted).rename(columns={"review": "text", "sentiment": "true_label"})
    clf = tiny_classifier(ws, sorted(base["true_label"].unique()))
    cfg = MonitorConfig()
    print(f"torch threads: {torch.get_num_threads()}; sample_rows={cfg.sample_rows}, model_rows={cfg.model_rows}")
    warm = base.sample(300, random_state=0)  # imports and first-call costs stay out of the timings
    detect_drift(cfg, {"train": warm, "validation": warm, "test": warm}, warm, clf, Path(ws.root, "warm-up"))

    rows = []
    for n in args.sizes:
        reference = base.sample(n, replace=True, random_state=n).reset_index(drop=True)
        splits = {
            "train": reference.iloc[: int(0.75 * n)],
            "validation": reference.iloc[int(0.75 * n) : int(0.85 * n)],
            "test": reference.iloc[int(0.85 * n) :],
        }
        n_shift = int(0.3 * n)
        window = pd.concat(
            [
                base.sample(n - n_shift, replace=True, random_state=n + 1),
                shifted.sample(n_shift, replace=True, random_state=n + 2),
            ]
        ).sample(frac=1, random_state=0)
        # What serving logged, in batches of 1000: read back as the monitor reads it.
        log = ws.uri(f"predictions-{n}")
        start = datetime(2026, 3, 1, tzinfo=timezone.utc)
        for i in range(0, n, 1000):
            batch = window.iloc[i : i + 1000]
            append_predictions(
                log,
                pd.DataFrame(
                    {
                        "timestamp": [start + timedelta(seconds=i + j) for j in range(len(batch))],
                        "text": batch["text"].to_numpy(),
                        "label": "positive",
                        "score": 0.9,
                        "probs": '{"positive": 0.9}',
                        "model_name": "bench",
                        "model_version": "0",  # not the monitored version: the monitor recomputes
                        "true_label": batch["true_label"].to_numpy(),
                    }
                ),
            )
        t0 = time.perf_counter()
        current = read_window(log)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = detect_drift(cfg, splits, current, clf, Path(ws.root, f"reports-{n}"), version="1")
        t_check = time.perf_counter() - t0
        t_all = None
        if n <= args.unsampled_up_to:
            every_row = cfg.model_copy(update={"sample_rows": n})
            t0 = time.perf_counter()
            detect_drift(every_row, splits, current, clf, Path(ws.root, f"reports-all-{n}"), version="1")
            t_all = time.perf_counter() - t0
        rows.append((n, t_read, t_check, t_all, report))
        print(
            f"{n:>7} rows: read window {t_read:5.1f} s, drift check {t_check:5.1f} s -> {report.status} "
            f"({len(report.fired)}/{len(report.signals)} signals); rows seen: {report.samples}"
            + (f"; inputs on every row: {t_all:.1f} s" if t_all is not None else ""),
            flush=True,
        )
    print("\n| current rows | reference rows | read window (s) | drift check (s) | total (s) | inputs unsampled (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, t_read, t_check, t_all, _ in rows:
        unsampled = f"{t_all:.1f}" if t_all is not None else "-"
        print(f"| {n:,} | {n:,} | {t_read:.1f} | {t_check:.1f} | {t_read + t_check:.1f} | {unsampled} |")
    for (n1, r1, c1, _, _), (n2, r2, c2, _, _) in zip(rows, rows[1:], strict=False):
        print(f"{n1:,} -> {n2:,} rows (x{n2 / n1:.0f}): time x{(r2 + c2) / (r1 + c1):.2f}")


if __name__ == "__main__":
    main()
