"""The drift signals: two Evidently reports, one per reference, and the `Signal`s read out of their tests.

- inputs, against the champion's train + validation splits: the text itself (a domain classifier tells
  reference from current), text length, the share of non-letter characters, and the true label when
  the window has one;
- model, against the validation + test splits: the predicted label, the confidence, the pooled
  embeddings of the champion, and the share of words its tokenizer does not hold as one token.
  Held-out rows, because on its own training rows a model is more confident than on any new data, and
  a tokenizer keeps every word of its training text whole: either gap would look like drift on every window.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from threadpoolctl import threadpool_limits

from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.policy import auc_threshold
from tasks.monitoring.results import Signal

DESCRIPTORS = ("text_length", "non_letter_pct")
# Evidently column -> (signal name, group)
INPUT_SIGNALS = {
    "text": ("text", "inputs"),
    **{d: (d, "inputs") for d in DESCRIPTORS},
    "true_label": ("label", "inputs"),
}
MODEL_SIGNALS = {
    "predicted_label": ("predicted_label", "model"),
    "confidence": ("confidence", "model"),
    "oov_words_pct": ("oov_words_pct", "inputs"),
    "embeddings": ("embeddings", "model"),
}


def signals_from(snapshot, names: dict[str, tuple[str, str]]) -> list[Signal]:
    """One Signal per drift test of the snapshot; `names` maps a metric's column to (signal name, group)."""
    result = snapshot.dict()
    values = {m["id"]: m["value"] for m in result["metrics"]}
    signals = []
    for test in result.get("tests", []):
        params = test["metric_config"]["params"]
        column = params.get("column") or params.get("embeddings_name")
        if not params["type"].endswith(("ValueDrift", "EmbeddingsDrift")) or column not in names:
            continue
        value = values.get(test["metric_config"]["metric_id"])
        threshold = params.get("threshold")
        if threshold is None:  # EmbeddingsDrift carries its threshold in the test
            threshold = (test.get("test_config") or {}).get("threshold", float("nan"))
        name, group = names[column]
        signals.append(
            Signal(
                name=name,
                group=group,
                method=str(params.get("method") or "domain classifier ROC AUC"),
                score=float(value) if isinstance(value, int | float) else float("nan"),
                threshold=float(threshold) if threshold is not None else float("nan"),
                fired=test["status"] == "FAIL",
                detail=test.get("description", ""),
            )
        )
    return signals


def inputs_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, labels: bool, title: str, text: str):
    """Text, text descriptors and (with `labels`) the true label, current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength
    from evidently.presets import DataDriftPreset, TextEvals
    from evidently.presets.dataset_stats import ValueStatsTests
    from evidently.tests import gte

    from tasks.monitoring.report_layout import Titled

    # Evidently 0.7.23 fails to render when a column's row-count tests are emptied, so those stay default.
    no_tests = ValueStatsTests(
        **{f.name: [] for f in dataclasses.fields(ValueStatsTests) if f.name != "row_count_tests"}
    )
    cols = ["text", "true_label"] if labels else ["text"]

    def dataset(df: pd.DataFrame):
        return Dataset.from_pandas(
            df[cols],
            data_definition=DataDefinition(text_columns=["text"], categorical_columns=cols[1:]),
            descriptors=[
                TextLength("text", alias="text_length"),
                NonLetterCharacterPercentage("text", alias="non_letter_pct"),
            ],
        )

    drift = DataDriftPreset(
        columns=["text", *DESCRIPTORS, *cols[1:]],
        drift_share=cfg.policy.drift_share,
        text_method="abs_text_content_drift",
        text_threshold=auc_threshold(cfg.text_threshold, len(ref), len(cur)),
        num_method=cfg.numeric_method(len(ref), len(cur)),
        num_threshold=cfg.num_threshold,
        cat_method=cfg.cat_method,
        cat_threshold=cfg.cat_threshold,
    )
    # Descriptor summaries for the reader; no tests of their own (the drift tests above decide).
    summaries = TextEvals(
        columns=list(DESCRIPTORS),
        row_count_tests=[gte(cfg.policy.min_rows)],
        column_tests={d: no_tests for d in DESCRIPTORS},
    )
    report = Report([Titled(title=title, text=text, shares=len(ref) != len(cur), items=[drift, summaries])],
                    include_tests=True)  # fmt: skip
    return report.run(dataset(cur), dataset(ref))


def model_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, title: str, text: str):
    """Predicted label, confidence, tokenizer splits and embeddings (frames from `with_model_outputs`)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod
    from evidently.tests import lte

    from tasks.monitoring.report_layout import Titled

    emb = [c for c in ref.columns if c.startswith("emb_")]
    definition = DataDefinition(
        numerical_columns=["confidence", "oov_words_pct", *emb],
        categorical_columns=["predicted_label"],
        embeddings={"embeddings": emb},
    )
    threshold = auc_threshold(cfg.embeddings_threshold, len(ref), len(cur))
    num_method = cfg.numeric_method(len(ref), len(cur))
    metrics = [
        ValueDrift(column="predicted_label", method=cfg.cat_method, threshold=cfg.cat_threshold),
        ValueDrift(column="confidence", method=num_method, threshold=cfg.num_threshold),
        ValueDrift(column="oov_words_pct", method=num_method, threshold=cfg.num_threshold),
        EmbeddingsDrift(
            embeddings_name="embeddings",
            drift_method=ModelDriftMethod(threshold=threshold, bootstrap=False),
            tests=[lte(threshold)],
        ),
    ]
    report = Report([Titled(title=title, text=text, shares=len(ref) != len(cur), items=metrics)], include_tests=True)
    columns = ["predicted_label", "confidence", "oov_words_pct", *emb]
    # EmbeddingsDrift draws a t-SNE picture (1000 OpenMP-parallel iterations); on a busy machine two threads
    # that wait for each other at every iteration were 14x slower than one (measured), so it gets one.
    with threadpool_limits(limits=1, user_api="openmp"):
        return report.run(
            Dataset.from_pandas(cur[columns], data_definition=definition),
            Dataset.from_pandas(ref[columns], data_definition=definition),
        )
