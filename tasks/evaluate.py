"""Stage 5, evaluate: the fine-tuned model against two baselines on the held-out test split.

Baselines: the majority class, and TF-IDF (word and character n-grams) + logistic regression
trained on the same train split with C tuned on validation (`tasks/baseline.py`). The verdict
`passed` means what the gate's quality rules mean (`tasks/quality.py`): the model beats the
majority class, reaches `min_macro_f1` and the gate's minimum, and beats the TF-IDF baseline by
`gate.baseline_margin` (unless that rule was switched off with a reason).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import quote

import mlflow
import numpy as np
from matplotlib.figure import Figure  # the object API needs no display backend on workers
from pydantic import BaseModel, ConfigDict, Field
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from models.classifier import TextClassifier
from tasks import reporting
from tasks.baseline import BaselineModel, load_baseline, train_baseline
from tasks.data import PreparedData, load_splits
from tasks.errors import PipelineInputError
from tasks.faults import maybe_fail
from tasks.finetune import FinetunedModel
from tasks.orchestration import RetryPolicy
from tasks.quality import QualityBar, RuleResult, quality_rules
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
    rules: list[RuleResult] = []
    baseline: BaselineModel | None = None
    test_size: int
    mlflow_run_id: str
    confusion: list[list[int]] = Field([], description="Test split counts: rows true labels, columns predicted.")


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


def confusion_figure(counts: list[list[int]], labels: list[str], title: str) -> Figure:
    """The confusion matrix as a figure titled `title` (register re-draws it with the model's name and version)."""
    fig = Figure(figsize=(1.2 * len(labels) + 2.4, 1.2 * len(labels) + 1.6))
    ax = fig.subplots()
    ConfusionMatrixDisplay(confusion_matrix=np.array(counts), display_labels=labels).plot(
        ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def artifact_url(tracking: Tracking, run_id: str, path: str) -> str:
    """An MLflow run artifact as a URL the MLflow UI serves (for images in markdown)."""
    return f"{tracking.ui_url}/get-artifact?path={quote(path)}&run_uuid={run_id}"


def evaluate(
    cfg: EvaluateConfig,
    data: PreparedData,
    model: FinetunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    quality: QualityBar | None = None,
) -> EvalReport:
    """Score the model and both baselines on the test split; `quality` is the gate's bar (`GateConfig.quality()`)."""
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
    # Scored through the exported ONNX model: the numbers the gate and serving will see.
    baseline = train_baseline(splits, labels, data.fingerprint, ws)
    y_baseline = [labels.index(p) for p in load_baseline(baseline).predict(test["text"])]
    scores = {
        "model": score(y_true, y_model, labels),
        "majority": score(y_true, list(majority.predict(test["text"])), labels),
        "tfidf_logreg": score(y_true, y_baseline, labels),
    }
    rules = verdict_rules(cfg, quality or QualityBar(), scores)
    reasons = [r.reason for r in rules if not r.passed]

    with (
        stage_run(tracking, "evaluate", parent_run_id, {"zero2one.data_fingerprint": data.fingerprint}) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name, s in scores.items():
            prefix = "test" if name == "model" else f"baseline_{name}"
            mlflow.log_metrics({f"{prefix}_accuracy": s.accuracy, f"{prefix}_macro_f1": s.macro_f1})
        for lab, m in scores["model"].per_class.items():
            mlflow.log_metrics({f"test_precision_{lab}": m["precision"], f"test_recall_{lab}": m["recall"]})
        mlflow.log_params({"baseline_C": baseline.c})
        mlflow.set_tag("zero2one.eval_passed", str(not reasons).lower())
        out = Path(tmp)
        counts = confusion_matrix(y_true, y_model, labels=list(range(len(labels)))).tolist()
        title = f"Test split ({len(test)} texts): true vs predicted"
        confusion_figure(counts, labels, title).savefig(out / "confusion_matrix.png", dpi=110)
        (out / "metrics.json").write_text(json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=2))
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        uri = publish_dir(out, ws.uri("evaluations", model.uri.rstrip("/").split("/")[-2]))
    report = EvalReport(
        uri=uri,
        **scores,
        passed=not reasons,
        reasons=reasons,
        rules=rules,
        baseline=baseline,
        test_size=len(test),
        mlflow_run_id=run.info.run_id,
        confusion=counts,
    )
    _report(report, tracking)
    return report


def verdict_rules(cfg: EvaluateConfig, quality: QualityBar, scores: dict[str, Scores]) -> list[RuleResult]:
    """Beat the majority class, reach `min_macro_f1`, then the gate's quality rules on the same numbers."""
    model, majority = scores["model"].macro_f1, scores["majority"].macro_f1
    rules = [
        RuleResult(
            name="majority",
            passed=model > majority,
            value=f"{model:.4f} vs {majority:.4f}",
            reason=f"macro-F1 {model:.4f} {'beats' if model > majority else 'does not beat'} "
            f"the majority class ({majority:.4f})",
        ),
        RuleResult(
            name="min_test_macro_f1",
            passed=model >= cfg.min_macro_f1,
            value=f"{model:.4f}",
            reason=f"macro-F1 {model:.4f} {'>=' if model >= cfg.min_macro_f1 else '<'} "
            f"evaluate.min_macro_f1={cfg.min_macro_f1}",
        ),
    ]
    value, baseline = (getattr(scores[k], quality.metric) for k in ("model", "tfidf_logreg"))
    return rules + quality_rules(quality, value, baseline)


def comparison_rows(report: EvalReport) -> list[dict]:
    return [
        {"model": name, "accuracy": round(s.accuracy, 4), "macro_f1": round(s.macro_f1, 4)}
        for name, s in (
            ("fine-tuned", report.model),
            ("tf-idf + logreg", report.tfidf_logreg),
            ("majority class", report.majority),
        )
    ]


def rule_rows(report: EvalReport) -> list[dict]:
    return [{"rule": r.name, "result": "pass" if r.passed else "FAIL", "why": r.reason} for r in report.rules]


def _report(report: EvalReport, tracking: Tracking) -> None:
    png = artifact_url(tracking, report.mlflow_run_id, "evaluation/confusion_matrix.png")
    reporting.table("evaluate", comparison_rows(report), description=f"Test split ({report.test_size} texts)")
    per_class = [{"class": k, **{m: round(v, 4) for m, v in d.items()}} for k, d in report.model.per_class.items()]
    verdict = "passed" if report.passed else "failed: " + "; ".join(report.reasons)
    reporting.markdown(
        "evaluate-summary",
        f"# Evaluation: {verdict}\n\n{reporting.md_table(comparison_rows(report))}\n\n"
        f"Rules (the gate applies the same ones to its frozen set):\n\n{reporting.md_table(rule_rows(report))}\n\n"
        f"TF-IDF baseline: C={report.baseline.c if report.baseline else '-'} (chosen on the validation split)\n\n"
        f"Per class:\n\n{reporting.md_table(per_class)}\n\n"
        f"![Confusion matrix on the test split]({png})\n\n"
        f"[Confusion matrix]({png}) and metrics.json in the MLflow run: "
        f"[{report.mlflow_run_id}]({tracking.run_url(report.mlflow_run_id)}) (and in `{report.uri}`)\n",
    )
    reporting.logger().info("evaluation %s: %s", verdict, comparison_rows(report))
