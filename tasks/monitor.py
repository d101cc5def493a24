"""Monitor: is production data still like the data the champion learned from? Evidently decides per signal.

The champion is found by alias in the registry; its lineage tags lead to its prepared data and its
checkpoint, so there is no reference path to type. Each signal is one Evidently metric with its
drift test (methods and thresholds in `MonitorConfig`):

- inputs, against the champion's train + validation splits: the text itself (a domain classifier
  tells reference from current), text length, the share of words the model's tokenizer does not
  hold as one token, the share of non-letter characters, and the true label when the window has one;
- model, against the validation + test splits: the predicted label, the confidence, and the pooled
  embeddings of the champion; with labels also its accuracy, compared with its accuracy there.
  Held-out rows, because on its own training rows a model is more confident than on any new data,
  and that gap would look like drift on every window.

Statistics that do not need every row see a seeded sample (`sample_rows` per side for inputs,
`model_rows` for the model, which needs a forward pass); the report says how many rows each saw.
A window below `policy.min_rows` is `insufficient_data`, never "no drift".
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Literal

import datasets
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from models.classifier import TextClassifier
from tasks import reporting
from tasks.data import read_source
from tasks.errors import PipelineInputError
from tasks.fingerprint import hash_json
from tasks.orchestration import RetryPolicy
from tasks.prediction_log import is_prediction_log, log_uri, read_window, to_utc
from tasks.storage import materialize, publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import Workspace, exists, join

Status = Literal["drift", "no_drift", "insufficient_data"]
DESCRIPTORS = ("text_length", "oov_words_pct", "non_letter_pct")


class WindowSource(BaseModel):
    """Where the current window comes from: the prediction log (default) or any file or saved dataset."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        None,
        description="Prediction log folder, file (csv, tsv, jsonl, parquet), saved dataset folder or demo:<name>; "
        "default: the workspace's prediction log.",
    )
    since: datetime | None = Field(None, description="Rows at or after this time (needs a `timestamp` column).")
    until: datetime | None = Field(None, description="Rows before this time (needs a `timestamp` column).")
    last_n: int | None = Field(None, gt=0, description="Then keep only the newest N rows.")
    text_column: str = Field("text", description="Column holding the input text.")
    label_column: str | None = Field("true_label", description="Column holding true labels, where known.")
    split: str | None = Field(None, description="Split to use when the source has splits (default: all).")


class DriftPolicy(BaseModel):
    """When a window counts as drifted: enough signals fired, or the champion got clearly worse on it."""

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(200, ge=1, description="Smaller windows are reported as insufficient_data.")
    drift_share: float = Field(0.3, gt=0, le=1, description="Drift when at least this share of the signals fire.")
    max_accuracy_drop: float = Field(
        0.05, ge=0, le=1, description="Drift when accuracy on labeled rows falls by more than this."
    )
    min_labeled_rows: int = Field(50, ge=1, description="Label signals need at least this many labeled rows.")


class MonitorConfig(BaseModel):
    """How the drift statistics are computed (Evidently drift methods and their thresholds).

    The two ROC AUC thresholds are raised, on small samples, to what a random classifier reaches 5% of the time.
    """

    model_config = ConfigDict(extra="forbid")

    policy: DriftPolicy = DriftPolicy()
    sample_rows: int = Field(5000, ge=100, description="Rows per side for the input statistics.")
    model_rows: int = Field(
        500, ge=50, description="Rows per side that go through the model (predictions, embeddings, accuracy)."
    )
    text_threshold: float = Field(
        0.55, gt=0.5, lt=1, description="Least ROC AUC of the text domain classifier that counts as drift."
    )
    num_method: str | None = Field(
        None, description="Evidently method for numeric signals; default ks up to 1000 rows a side, else wasserstein."
    )
    num_threshold: float | None = Field(None, description="Its threshold; default: Evidently's for the method.")
    cat_method: str = Field(
        "jensenshannon",
        description="Evidently method for label signals. Not Evidently's chisquare: it takes the reference "
        "proportions as exact, which fired on 4 of 10 same-distribution windows here.",
    )
    cat_threshold: float | None = Field(None, description="Its threshold; default: Evidently's for the method.")

    def numeric_method(self, n_ref: int, n_cur: int) -> str:
        """Evidently picks by reference size alone; a small current window is just as noisy, so both count."""
        return self.num_method or ("ks" if min(n_ref, n_cur) <= 1000 else "wasserstein")

    embeddings_threshold: float = Field(
        0.55, gt=0.5, lt=1, description="Least ROC AUC of the embeddings domain classifier that counts as drift."
    )
    batch_size: int = Field(64, gt=0)
    seed: int = 0
    retry: RetryPolicy = RetryPolicy(retries=1, delay_seconds=5)


class Champion(BaseModel):
    """The registered version being monitored and where its lineage points."""

    name: str
    alias: str
    version: str
    run_id: str
    data_uri: str
    checkpoint_uri: str
    model_dir: str
    data_fingerprint: str
    labels: list[str]


class Signal(BaseModel):
    """One drift test: Evidently's score, the threshold it was held to, and whether it fired."""

    name: str
    group: Literal["inputs", "model", "performance"]
    method: str
    score: float
    threshold: float
    fired: bool
    detail: str = ""


class DriftReport(BaseModel):
    """The verdict on one window, the signals behind it, and where the reports are."""

    status: Status
    reasons: list[str]
    model_name: str = ""
    model_version: str = ""
    window: dict = {}
    window_rows: int
    labeled_rows: int
    signals: list[Signal] = []
    drift_share: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    samples: dict[str, int] = {}
    skipped: list[str] = []
    report_uri: str | None = None
    reports: list[str] = []
    mlflow_run_id: str | None = None

    @property
    def fired(self) -> list[Signal]:
        return [s for s in self.signals if s.fired]


# ---------------------------------------------------------------- the champion and its data


def find_champion(tracking: Tracking, name: str, alias: str = "champion") -> Champion:
    """The version behind `name@alias`, with its lineage checked: errors say what is missing."""
    client = tracking.client()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        raise PipelineInputError(f"registered model '{name}' does not exist in {tracking.uri}")
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise PipelineInputError(f"model '{name}' has no version with alias '{alias}' in {tracking.uri}") from None
    tags = mv.tags
    data_uri = tags.get("zero2one.data_uri")
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"{name} v{mv.version}: tag zero2one.data_uri={data_uri!r} does not point at prepared data; "
            "the reference data is gone, so there is nothing to compare with"
        )
    checkpoint = tags.get("zero2one.checkpoint_uri", "")
    if checkpoint and exists(join(checkpoint, "config.json")):
        model_dir = materialize(checkpoint)
    else:  # the checkpoint folder was cleaned up: the weights are also inside the registered artifact
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", tracking_uri=tracking.uri, registry_uri=tracking.uri
        )
        model_dir = Path(local, "artifacts", "model")
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    return Champion(
        name=name,
        alias=alias,
        version=str(mv.version),
        run_id=mv.run_id or "",
        data_uri=data_uri,
        checkpoint_uri=checkpoint,
        model_dir=str(model_dir),
        data_fingerprint=tags.get("zero2one.data_fingerprint", ""),
        labels=splits["train"].features["label"].names,
    )


def load_reference(data_uri: str) -> dict[str, pd.DataFrame]:
    """The champion's prepared splits as frames with `text` and `true_label` (label names)."""
    splits = datasets.load_from_disk(join(data_uri, "splits"))
    frames = {}
    for name, split in splits.items():
        names = split.features["label"].names
        df = split.to_pandas()
        frames[name] = pd.DataFrame({"text": df["text"], "true_label": [names[i] for i in df["label"]]})
    return frames


# ---------------------------------------------------------------- the current window


def _read_dataset(uri: str, split: str | None) -> pd.DataFrame:
    loaded = datasets.load_from_disk(uri)
    if isinstance(loaded, datasets.DatasetDict):
        if split is not None and split not in loaded:
            raise PipelineInputError(f"{uri}: no split '{split}' (splits: {sorted(loaded)})")
        parts = [loaded[split]] if split else list(loaded.values())
    else:
        parts = [loaded]
    frames = []
    for part in parts:
        df = part.to_pandas()
        for column, feature in part.features.items():
            if isinstance(feature, datasets.ClassLabel):
                df[column] = [feature.names[i] if i is not None and i >= 0 else None for i in df[column]]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _read_any(source: WindowSource, ws: Workspace) -> pd.DataFrame:
    uri = source.uri or log_uri(ws)
    if is_prediction_log(uri):
        return read_window(uri, source.since, source.until, source.last_n)
    if source.uri is None:
        raise PipelineInputError(f"no prediction log at {uri} yet; pass a window file or dataset instead")
    if not uri.startswith(("demo:", "hf:")) and (
        exists(join(uri, "dataset_dict.json")) or exists(join(uri, "state.json"))
    ):
        return _read_dataset(uri, source.split)
    frames = read_source(uri, ws)
    if source.split:
        if source.split not in frames:
            raise PipelineInputError(f"{uri}: no split '{source.split}' (splits: {sorted(frames)})")
        frames = {source.split: frames[source.split]}
    df = pd.concat(frames.values(), ignore_index=True)
    return df.drop(columns=[c for c in ("_line", "_file") if c in df.columns])


def load_window(source: WindowSource, ws: Workspace) -> pd.DataFrame:
    """The window as `text`, `true_label` (None where unknown) and whatever log columns it has.

    A missing text column or an empty window is the caller's mistake: PipelineInputError.
    """
    df = _read_any(source, ws)
    where = source.uri or log_uri(ws)
    if source.text_column not in df.columns:
        raise PipelineInputError(
            f"window {where}: no text column '{source.text_column}' (columns: {list(df.columns)}); "
            "set the window's text_column"
        )
    if (source.since or source.until) and not is_prediction_log(where):
        if "timestamp" not in df.columns:
            raise PipelineInputError(
                f"window {where}: since/until need a 'timestamp' column (columns: {list(df.columns)})"
            )
        ts = pd.to_datetime(df["timestamp"], utc=True)
        since, until = to_utc(source.since), to_utc(source.until)
        df = df[(ts >= since if since is not None else True) & (ts < until if until is not None else True)]
    if source.last_n:
        df = df.tail(source.last_n)
    label_col = source.label_column
    if label_col and label_col not in df.columns:
        if "label_column" in source.model_fields_set:
            raise PipelineInputError(f"window {where}: no label column '{label_col}' (columns: {list(df.columns)})")
        label_col = None
    out = df.rename(columns={source.text_column: "text"}).copy()
    if label_col and label_col != "true_label":
        out = out.drop(columns=["true_label"], errors="ignore").rename(columns={label_col: "true_label"})
    if "true_label" not in out.columns or not label_col:
        out["true_label"] = None
    out["true_label"] = [None if v is None or pd.isna(v) or str(v).strip() == "" else str(v) for v in out["true_label"]]
    out["text"] = out["text"].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    if out.empty:
        span = "".join(
            f" {word} {when.isoformat()}" for word, when in (("since", source.since), ("until", source.until)) if when
        )
        raise PipelineInputError(f"window {where} has no rows{span}; nothing to monitor")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- the champion's view of a text


@torch.inference_mode()
def model_outputs(clf: TextClassifier, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and mean-pooled last-layer embeddings, in one forward pass per batch."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = np.zeros((len(texts), len(clf.labels)), dtype=np.float32)
    emb = np.zeros((len(texts), clf.model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = clf.tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=clf.max_length, return_tensors="pt"
        ).to(clf.device)
        out = clf.model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        emb[idx] = ((out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy()
        probs[idx] = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
    return probs, emb


def oov_words_pct(tokenizer):
    """Evidently column function: % of words the tokenizer splits into pieces or maps to [UNK]."""
    from evidently.core.datasets import DatasetColumn
    from evidently.legacy.core import ColumnType

    unk = tokenizer.unk_token_id

    def pct(column: DatasetColumn) -> DatasetColumn:
        texts = ["" if not isinstance(t, str) else t for t in column.data]
        enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
        values = []
        for i in range(len(texts)):
            pieces = Counter()
            unknown = set()
            for word, token in zip(enc.word_ids(i), enc["input_ids"][i], strict=True):
                if word is not None:
                    pieces[word] += 1
                    if token == unk:
                        unknown.add(word)
            oov = sum(1 for w, n in pieces.items() if n > 1 or w in unknown)
            values.append(100.0 * oov / len(pieces) if pieces else 0.0)
        return DatasetColumn(type=ColumnType.Numerical, data=pd.Series(values, index=column.data.index))

    return pct


# ---------------------------------------------------------------- Evidently


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return df.sample(n=n, random_state=seed).reset_index(drop=True) if len(df) > n else df.reset_index(drop=True)


def _auc_threshold(configured: float, n_ref: int, n_cur: int) -> float:
    """A random classifier's 95th-percentile ROC AUC on the held-out half, if that is above `configured`.

    Same idea as Evidently's bootstrap for small data, in closed form, so the threshold is known.
    """
    a, b = max(n_ref // 2, 1), max(n_cur // 2, 1)
    return max(configured, 0.5 + 1.645 * math.sqrt((a + b + 1) / (12 * a * b)))


def _drop_threshold(configured: float, accuracy: float, n_ref: int, n_cur: int) -> float:
    """`configured`, raised to the drop that chance alone exceeds 1% of the time at these sizes.

    Stricter than the 5% of the other signals because a drop alone decides, without a second signal.
    """
    p = min(max(accuracy, 0.01), 0.99)
    return max(configured, 2.326 * math.sqrt(p * (1 - p) * (1 / n_ref + 1 / n_cur)))


def _signals_from(snapshot, group: str, names: dict[str, str]) -> list[Signal]:
    """One Signal per drift test of the snapshot; `names` maps a metric's column to the signal name."""
    result = snapshot.dict()
    values = {m["id"]: m["value"] for m in result["metrics"]}
    signals = []
    for test in result.get("tests", []):
        params = test["metric_config"]["params"]
        column = params.get("column") or params.get("embeddings_name")
        if not params["type"].endswith(("ValueDrift", "EmbeddingsDrift")) or column not in names:
            continue
        value = values.get(test["metric_config"]["metric_id"])
        score = float(value) if isinstance(value, int | float) else float("nan")
        threshold = params.get("threshold")
        if threshold is None:  # EmbeddingsDrift carries its threshold in the test
            threshold = (test.get("test_config") or {}).get("threshold", float("nan"))
        method = params.get("method") or "domain classifier ROC AUC"
        signals.append(
            Signal(
                name=names[column],
                group=group,
                method=str(method),
                score=score,
                threshold=float(threshold) if threshold is not None else float("nan"),
                fired=test["status"] == "FAIL",
                detail=test.get("description", ""),
            )
        )
    return signals


def _inputs_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, tokenizer, labels: bool):
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import CustomColumnDescriptor, NonLetterCharacterPercentage, TextLength
    from evidently.presets import DataDriftPreset, TextEvals
    from evidently.presets.dataset_stats import ValueStatsTests
    from evidently.tests import gte

    # Evidently 0.7.23 fails to render when a column's row-count tests are emptied, so those stay default.
    no_tests = ValueStatsTests(
        **{f.name: [] for f in dataclasses.fields(ValueStatsTests) if f.name != "row_count_tests"}
    )

    def dataset(df: pd.DataFrame):
        cols = ["text", "true_label"] if labels else ["text"]
        return Dataset.from_pandas(
            df[cols],
            data_definition=DataDefinition(text_columns=["text"], categorical_columns=cols[1:]),
            descriptors=[
                TextLength("text", alias="text_length"),
                CustomColumnDescriptor("text", oov_words_pct(tokenizer), alias="oov_words_pct"),
                NonLetterCharacterPercentage("text", alias="non_letter_pct"),
            ],
        )

    columns = ["text", *DESCRIPTORS, *(["true_label"] if labels else [])]
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                drift_share=cfg.policy.drift_share,
                text_method="abs_text_content_drift",
                text_threshold=_auc_threshold(cfg.text_threshold, len(ref), len(cur)),
                num_method=cfg.numeric_method(len(ref), len(cur)),
                num_threshold=cfg.num_threshold,
                cat_method=cfg.cat_method,
                cat_threshold=cfg.cat_threshold,
            ),
            # Descriptor summaries for the reader; no tests of their own (the drift tests above decide).
            TextEvals(
                columns=list(DESCRIPTORS),
                row_count_tests=[gte(cfg.policy.min_rows)],
                column_tests={d: no_tests for d in DESCRIPTORS},
            ),
        ],
        include_tests=True,
    )
    return report.run(dataset(cur), dataset(ref))


def _model_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, dim: int):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod
    from evidently.tests import lte

    emb = [f"emb_{i}" for i in range(dim)]
    definition = DataDefinition(
        numerical_columns=["confidence", *emb],
        categorical_columns=["predicted_label"],
        embeddings={"embeddings": emb},
    )
    threshold = _auc_threshold(cfg.embeddings_threshold, len(ref), len(cur))
    report = Report(
        [
            ValueDrift(column="predicted_label", method=cfg.cat_method, threshold=cfg.cat_threshold),
            ValueDrift(column="confidence", method=cfg.numeric_method(len(ref), len(cur)), threshold=cfg.num_threshold),
            EmbeddingsDrift(
                embeddings_name="embeddings",
                drift_method=ModelDriftMethod(threshold=threshold, bootstrap=False),
                tests=[lte(threshold)],
            ),
        ],
        include_tests=True,
    )
    # EmbeddingsDrift draws a t-SNE picture (1000 OpenMP-parallel iterations); on a busy machine two threads
    # that wait for each other at every iteration were 14x slower than one (measured), so it gets one.
    with threadpool_limits(limits=1, user_api="openmp"):
        return report.run(
            Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
        )


def _with_model_outputs(clf: TextClassifier, df: pd.DataFrame, batch_size: int, version: str | None) -> pd.DataFrame:
    """Predicted label, confidence and embedding columns; logged predictions of this version are kept."""
    probs, emb = model_outputs(clf, df["text"].tolist(), batch_size)
    out = pd.DataFrame(emb, columns=[f"emb_{i}" for i in range(emb.shape[1])])
    out.insert(0, "predicted_label", [clf.labels[i] for i in probs.argmax(axis=1)])
    out.insert(1, "confidence", probs.max(axis=1).astype(float))
    if version is not None and {"label", "score", "model_version"} <= set(df.columns):
        served = (df["model_version"].astype(str) == version).to_numpy()
        out.loc[served, "predicted_label"] = df.loc[served, "label"].to_numpy()
        out.loc[served, "confidence"] = df.loc[served, "score"].astype(float).to_numpy()
    out["true_label"] = df["true_label"].to_numpy()
    return out


def detect_drift(
    cfg: MonitorConfig,
    reference: dict[str, pd.DataFrame],
    window: pd.DataFrame,
    clf: TextClassifier,
    out_dir: Path,
    version: str | None = None,
) -> DriftReport:
    """The whole drift computation, without MLflow or Prefect: signals, verdict, and HTML reports in `out_dir`.

    `reference` holds the champion's splits (`load_reference`), `window` comes from `load_window`;
    `version` is the champion's, so that predictions it logged itself are used as they were served.
    """
    policy = cfg.policy
    labeled = int(window["true_label"].notna().sum())
    if len(window) < policy.min_rows:
        return DriftReport(
            status="insufficient_data",
            reasons=[f"the window has {len(window)} rows; policy.min_rows={policy.min_rows} are needed to judge"],
            window_rows=len(window),
            labeled_rows=labeled,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = []

    # Inputs: text, descriptors and true labels, on up to `sample_rows` rows per side.
    ref_in = _sample(
        pd.concat([reference["train"], reference["validation"]], ignore_index=True), cfg.sample_rows, cfg.seed
    )
    cur_in = _sample(window[["text", "true_label"]], cfg.sample_rows, cfg.seed)
    with_labels = int(cur_in["true_label"].notna().sum()) >= policy.min_labeled_rows
    if not with_labels and labeled:
        skipped.append(
            f"label drift: {labeled} labeled rows, fewer than policy.min_labeled_rows={policy.min_labeled_rows}"
        )
    inputs = _inputs_report(cfg, ref_in, cur_in, clf.tokenizer, with_labels)
    inputs.save_html(str(out_dir / "inputs.html"))
    names = {"text": "text", **{d: d for d in DESCRIPTORS}, "true_label": "label"}
    signals = _signals_from(inputs, "inputs", names)

    # Model: predictions, confidence and embeddings on up to `model_rows` rows per side (forward passes).
    ref_model = _sample(
        pd.concat([reference["validation"], reference["test"]], ignore_index=True), cfg.model_rows, cfg.seed
    )
    cur_model = _sample(window, cfg.model_rows, cfg.seed)
    ref_out = _with_model_outputs(clf, ref_model, cfg.batch_size, None)
    cur_out = _with_model_outputs(clf, cur_model, cfg.batch_size, version)
    dim = ref_out.shape[1] - 3
    model_snapshot = _model_report(cfg, ref_out.drop(columns="true_label"), cur_out.drop(columns="true_label"), dim)
    model_snapshot.save_html(str(out_dir / "model.html"))
    signals += _signals_from(
        model_snapshot,
        "model",
        {"predicted_label": "predicted_label", "confidence": "confidence", "embeddings": "embeddings"},
    )

    # Performance: accuracy on the labeled rows, against the same model on its held-out rows.
    accuracy = reference_accuracy = None
    has_truth = cur_out["true_label"].notna()
    if int(has_truth.sum()) >= policy.min_labeled_rows:
        accuracy = float((cur_out.loc[has_truth, "predicted_label"] == cur_out.loc[has_truth, "true_label"]).mean())
        reference_accuracy = float((ref_out["predicted_label"] == ref_out["true_label"]).mean())
        drop = reference_accuracy - accuracy
        threshold = _drop_threshold(policy.max_accuracy_drop, reference_accuracy, len(ref_out), int(has_truth.sum()))
        signals.append(
            Signal(
                name="accuracy",
                group="performance",
                method="accuracy drop vs held-out reference",
                score=drop,
                threshold=threshold,
                fired=drop > threshold,
                detail=f"accuracy {accuracy:.4f} on {int(has_truth.sum())} labeled rows vs {reference_accuracy:.4f} "
                f"on {len(ref_out)} held-out reference rows",
            )
        )
    elif labeled:
        skipped.append(
            f"accuracy: {int(has_truth.sum())} labeled rows in the model sample, fewer than "
            f"policy.min_labeled_rows={policy.min_labeled_rows}"
        )

    fired = [s for s in signals if s.fired]
    share = len(fired) / len(signals)
    performance = any(s.fired for s in fired if s.group == "performance")
    drift = share >= policy.drift_share or performance
    reasons = [
        f"{len(fired)} of {len(signals)} signals fired ({share:.0%}; policy.drift_share={policy.drift_share:.0%})"
        + (f": {', '.join(s.name for s in fired)}" if fired else "")
    ]
    if performance:
        reasons.append(f"accuracy fell from {reference_accuracy:.4f} to {accuracy:.4f}")
    return DriftReport(
        status="drift" if drift else "no_drift",
        reasons=reasons,
        window_rows=len(window),
        labeled_rows=labeled,
        signals=signals,
        drift_share=share,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        samples={
            "reference_inputs": len(ref_in),
            "current_inputs": len(cur_in),
            "reference_model": len(ref_model),
            "current_model": len(cur_model),
        },
        skipped=skipped,
        reports=["inputs.html", "model.html"],
    )


# ---------------------------------------------------------------- the stage


def _series_run(tracking: Tracking, experiment_id: str, model_name: str) -> str:
    """One long-lived MLflow run per model whose metric history is the drift over time."""
    client = tracking.client()
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`zero2one.monitor_series` = '{model_name}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"monitor-{model_name}",
        tags={"zero2one.monitor_series": model_name, "zero2one.stage": "monitor-series"},
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def summary_metrics(report: DriftReport) -> dict[str, float]:
    """Flat numbers for MLflow: per signal its score and whether it fired, plus the verdict and window size."""
    metrics = {
        "window_rows": float(report.window_rows),
        "labeled_rows": float(report.labeled_rows),
        "drift_detected": float(report.status == "drift"),
        "insufficient_data": float(report.status == "insufficient_data"),
    }
    if report.drift_share is not None:
        metrics["drift_share"] = report.drift_share
    for s in report.signals:
        if math.isfinite(s.score):
            metrics[f"{s.name}_score"] = s.score
        metrics[f"{s.name}_fired"] = float(s.fired)
    if report.accuracy is not None:
        metrics["accuracy"] = report.accuracy
        metrics["reference_accuracy"] = report.reference_accuracy
    return metrics


def markdown(report: DriftReport) -> str:
    """The Prefect artifact: verdict, reasons, one row per signal, and how many rows each statistic saw."""
    rows = [
        {"signal": s.name, "group": s.group, "method": s.method, "score": s.score, "threshold": s.threshold,
         "fired": "yes" if s.fired else "no"}
        for s in report.signals
    ]  # fmt: skip
    samples = ", ".join(f"{k} {v}" for k, v in report.samples.items()) or "-"
    skipped = "".join(f"\n- not computed: {s}" for s in report.skipped)
    return (
        f"# Drift check of {report.model_name} v{report.model_version}: **{report.status}**\n\n"
        + "\n".join(f"- {r}" for r in report.reasons)
        + f"{skipped}\n\nWindow: {report.window_rows} rows ({report.labeled_rows} labeled) from "
        f"`{report.window.get('uri')}`\n\n{reporting.md_table(rows)}\n\nRows each statistic saw (sampled where a "
        f"statistic does not need every row): {samples}\n\nReports: `{report.report_uri}`\n"
    )


def check_drift(
    cfg: MonitorConfig, champion: Champion, source: WindowSource, tracking: Tracking, ws: Workspace
) -> DriftReport:
    """Load the window, run `detect_drift`, and log everything to an MLflow run of its own (plus the series)."""
    log = reporting.logger()
    window = load_window(source, ws)
    reference = load_reference(champion.data_uri)
    clf = TextClassifier(champion.model_dir)
    uri = source.uri or log_uri(ws)
    window_info = {**source.model_dump(mode="json"), "uri": uri}
    if "timestamp" in window.columns and len(window):
        ts = pd.to_datetime(window["timestamp"], utc=True)
        window_info["first_timestamp"], window_info["last_timestamp"] = ts.min().isoformat(), ts.max().isoformat()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    with tempfile.TemporaryDirectory() as tmp:
        report = detect_drift(cfg, reference, window, clf, Path(tmp), champion.version)
        report = report.model_copy(
            update={"model_name": champion.name, "model_version": champion.version, "window": window_info}
        )
        experiment_id = tracking.activate()
        series = _series_run(tracking, experiment_id, champion.name)
        tags = {
            "zero2one.model_name": champion.name,
            "zero2one.model_version": champion.version,
            "zero2one.monitor_status": report.status,
        }
        with stage_run(tracking, "monitor", series, tags) as run:
            mlflow.log_params(
                {"window_uri": uri[:500], "window_rows": report.window_rows, "policy": cfg.policy.model_dump_json()}
            )
            metrics = summary_metrics(report)
            mlflow.log_metrics(metrics)
            report_uri = None
            if report.reports:
                report_uri = publish_dir(Path(tmp), ws.uri("monitor", champion.name, champion.version, stamp))
                mlflow.log_artifacts(tmp, "monitor")
            report = report.model_copy(update={"mlflow_run_id": run.info.run_id, "report_uri": report_uri})
            mlflow.log_dict(report.model_dump(mode="json"), "monitor/summary.json")
    client = tracking.client()
    step = len(client.get_metric_history(series, "window_rows"))
    now_ms = int(datetime.now().timestamp() * 1000)
    for key, value in metrics.items():
        client.log_metric(series, key, value, timestamp=now_ms, step=step)
    log.info(
        "drift check of %s v%s: %s (%s)", champion.name, champion.version, report.status, "; ".join(report.reasons)
    )
    reporting.markdown("drift-check", markdown(report), description=f"{report.status} on {report.window_rows} rows")
    if report.reports:
        run_url = tracking.run_url(report.mlflow_run_id)
        reporting.link("drift-report", f"{run_url}/artifacts/monitor/inputs.html", "Evidently drift report (MLflow)")
    return report


def event_payload(report: DriftReport, alias: str) -> dict:
    """What `zero2one.drift.detected` carries; `window` validates as a WindowSource, so a trigger can pass it on."""
    window_keys = set(WindowSource.model_fields)
    return {
        "model": report.model_name,
        "version": report.model_version,
        "alias": alias,
        "window": {k: v for k, v in report.window.items() if k in window_keys},
        "window_rows": report.window_rows,
        "labeled_rows": report.labeled_rows,
        "first_timestamp": report.window.get("first_timestamp"),
        "last_timestamp": report.window.get("last_timestamp"),
        "signals": [
            {"name": s.name, "group": s.group, "method": s.method, "score": s.score, "threshold": s.threshold}
            for s in report.fired
        ],
        "drift_share": report.drift_share,
        "reasons": report.reasons,
        "report_uri": report.report_uri,
        "mlflow_run_id": report.mlflow_run_id,
    }


# ---------------------------------------------------------------- closing the loop: data to retrain on


class RetrainData(BaseModel):
    """The champion's splits plus newly labeled rows, as a folder `prepare_data` reads split by split."""

    uri: str
    added: dict[str, int]
    dropped: dict[str, int]
    labels: list[str]


def write_retrain_data(
    champion: Champion,
    new_data: WindowSource,
    ws: Workspace,
    validation: float = 0.1,
    test: float = 0.15,
    seed: int = 42,
) -> RetrainData:
    """Reference splits stay in their splits; labeled window rows are split (stratified) and added to them.

    Old test rows stay test rows and new ones are held out too, so the gate compares old and new model on
    data neither trained on. Rows without a label, with an empty text, or already in the reference are
    dropped and counted; a label the champion does not know is an error.
    """
    from sklearn.model_selection import train_test_split

    window = load_window(new_data, ws)
    reference = load_reference(champion.data_uri)
    dropped = {"unlabeled": int(window["true_label"].isna().sum())}
    new = window.loc[window["true_label"].notna(), ["text", "true_label"]]
    empty = new["text"].str.strip() == ""
    seen = set().union(*(set(f["text"]) for f in reference.values()))
    known = new["text"].isin(seen)
    dropped |= {"empty text": int(empty.sum()), "already in the reference": int((known & ~empty).sum())}
    new = new[~empty & ~known]
    before = len(new)
    new = new.drop_duplicates("text")
    dropped["duplicate texts"] = before - len(new)
    if new.empty:
        raise PipelineInputError(
            f"window {new_data.uri or log_uri(ws)} has no new labeled rows to retrain on (dropped: {dropped}); "
            f"label some rows ({new_data.label_column or 'true_label'} column) first"
        )
    unknown = sorted(set(new["true_label"]) - set(champion.labels))
    if unknown:
        raise PipelineInputError(
            f"window {new_data.uri or log_uri(ws)}: label(s) {unknown} are not among the champion's labels "
            f"{champion.labels}; fix them, or train a new model with those labels"
        )
    counts = new["true_label"].value_counts()
    stratify = new["true_label"] if len(new) >= 20 and counts.min() >= 3 else None
    if len(new) >= 10:
        rest, new_test = train_test_split(new, test_size=test, random_state=seed, stratify=stratify)
        strat = rest["true_label"] if stratify is not None else None
        new_train, new_val = train_test_split(
            rest, test_size=validation / (1 - test), random_state=seed, stratify=strat
        )
        parts = {"train": new_train, "validation": new_val, "test": new_test}
    else:  # too few to hold any out
        parts = {"train": new, "validation": new.iloc[:0], "test": new.iloc[:0]}
    frames = {
        split: pd.concat([reference[split], parts[split]], ignore_index=True).rename(columns={"true_label": "label"})
        for split in ("train", "validation", "test")
    }
    key = hash_json(champion.data_fingerprint, *(f.values.tolist() for f in frames.values()))
    with tempfile.TemporaryDirectory() as tmp:
        for split, df in frames.items():
            df[["text", "label"]].to_csv(Path(tmp, f"{split}.csv"), index=False)
        uri = publish_dir(Path(tmp), ws.uri("retrain", key))
    return RetrainData(uri=uri, added={k: len(v) for k, v in parts.items()}, dropped=dropped, labels=champion.labels)
