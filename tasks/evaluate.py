"""Stage 5, evaluate: the fine-tuned model against two baselines on the held-out test split.

Baselines: the majority class, and TF-IDF + logistic regression (scikit-learn) trained on the
same train split. Users see at a glance whether the network earns its cost. The verdict
`passed` (beats the majority class and reaches `min_macro_f1`) decides whether the version may
become champion at registration.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from matplotlib.figure import Figure  # the object API needs no display backend on workers
from pydantic import BaseModel, ConfigDict, Field
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.pipeline import make_pipeline

from models.classifier import TextClassifier
from tasks import reporting
from tasks.data import PreparedData, load_splits
from tasks.errors import PipelineInputError
from tasks.faults import maybe_fail
from tasks.finetune import FinetunedModel
from tasks.orchestration import RetryPolicy
from tasks.storage import materialize, publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import Workspace


class EvaluateConfig(BaseModel):
    """What "good enough to become champion" means at the end of a run."""

    model_config = ConfigDict(extra="forbid")

    min_macro_f1: float = Field(0.0, ge=0, le=1, description="The model must reach this macro-F1 on test.")
    batch_size: int = Field(64, gt=0)
    retry: RetryPolicy = RetryPolicy(retries=1)


class Scores(BaseModel):
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]] = {}


class EvalReport(BaseModel):
    uri: str
    model: Scores
    majority: Scores
    tfidf_logreg: Scores
    passed: bool
    reasons: list[str]
    test_size: int
    mlflow_run_id: str


def score(y_true: list[int], y_pred: list[int], labels: list[str]) -> Scores:
    idx = list(range(len(labels)))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return Scores(
        accuracy=accuracy_score(y_true, y_pred),
        macro_f1=f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0),
        per_class={
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(n[i])}
            for i, lab in enumerate(labels)
        },
    )


def _confusion_png(y_true, y_pred, labels: list[str], path: Path) -> None:
    fig = Figure(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(range(len(labels))), display_labels=labels, ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title("Test split: true vs predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def evaluate(
    cfg: EvaluateConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> EvalReport:
    maybe_fail("evaluate", ws.local_dir("faults"))
    splits = load_splits(data)
    train, test = splits["train"], splits["test"]
    if len(test) == 0:
        raise PipelineInputError(f"the test split of {data.uri} is empty: nothing to evaluate on")
    labels = data.labels
    classifier = TextClassifier(materialize(model.uri))
    if classifier.labels != labels:
        raise PipelineInputError(f"model {model.uri} predicts {classifier.labels}, the data has labels {labels}")

    y_true = list(test["label"])
    y_model = [labels.index(p) for p in classifier.predict(test["text"], batch_size=cfg.batch_size)]
    majority = DummyClassifier(strategy="most_frequent").fit(train["text"], train["label"])
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1), LogisticRegression(max_iter=1000))
    tfidf.fit(train["text"], train["label"])
    scores = {
        "model": score(y_true, y_model, labels),
        "majority": score(y_true, list(majority.predict(test["text"])), labels),
        "tfidf_logreg": score(y_true, list(tfidf.predict(test["text"])), labels),
    }
    reasons = []
    if scores["model"].macro_f1 <= scores["majority"].macro_f1:
        reasons.append(
            f"macro-F1 {scores['model'].macro_f1:.4f} does not beat the majority class "
            f"({scores['majority'].macro_f1:.4f})"
        )
    if scores["model"].macro_f1 < cfg.min_macro_f1:
        reasons.append(f"macro-F1 {scores['model'].macro_f1:.4f} < evaluate.min_macro_f1={cfg.min_macro_f1}")

    with (
        stage_run(tracking, "evaluate", parent_run_id, {"zero2one.data_fingerprint": data.fingerprint}) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name, s in scores.items():
            prefix = "test" if name == "model" else f"baseline_{name}"
            mlflow.log_metrics({f"{prefix}_accuracy": s.accuracy, f"{prefix}_macro_f1": s.macro_f1})
        for lab, m in scores["model"].per_class.items():
            mlflow.log_metrics({f"test_precision_{lab}": m["precision"], f"test_recall_{lab}": m["recall"]})
        out = Path(tmp)
        _confusion_png(y_true, y_model, labels, out / "confusion_matrix.png")
        (out / "metrics.json").write_text(json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=2))
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        uri = publish_dir(out, ws.uri("evaluations", model.uri.rstrip("/").split("/")[-2]))
    report = EvalReport(
        uri=uri, **scores, passed=not reasons, reasons=reasons, test_size=len(test), mlflow_run_id=run.info.run_id
    )
    _report(report, tracking)
    return report


def comparison_rows(report: EvalReport) -> list[dict]:
    return [
        {"model": name, "accuracy": round(s.accuracy, 4), "macro_f1": round(s.macro_f1, 4)}
        for name, s in (
            ("fine-tuned", report.model),
            ("tf-idf + logreg", report.tfidf_logreg),
            ("majority class", report.majority),
        )
    ]


def _report(report: EvalReport, tracking: Tracking) -> None:
    reporting.table("evaluate", comparison_rows(report), description=f"Test split ({report.test_size} texts)")
    per_class = [{"class": k, **{m: round(v, 4) for m, v in d.items()}} for k, d in report.model.per_class.items()]
    verdict = "passed" if report.passed else "failed: " + "; ".join(report.reasons)
    reporting.markdown(
        "evaluate-summary",
        f"# Evaluation: {verdict}\n\n{reporting.md_table(comparison_rows(report))}\n\n"
        f"Per class:\n\n{reporting.md_table(per_class)}\n\nConfusion matrix and metrics: `{report.uri}`  \n"
        f"MLflow run: [{report.mlflow_run_id}]({tracking.run_url(report.mlflow_run_id)})\n",
    )
    reporting.logger().info("evaluation %s: %s", verdict, comparison_rows(report))
