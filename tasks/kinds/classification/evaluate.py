"""The evaluate stage: the fine-tuned model against two baselines on the held-out test split.

Baselines: the majority class, and TF-IDF (word and character n-grams) + logistic regression
trained on the same train split with C tuned on validation (`tasks/kinds/classification/baseline.py`). The verdict
`passed` means what the gate's quality rules mean (`tasks/judging/quality.py`): the model beats the
majority class, reaches `min_macro_f1` and the gate's minimum, and beats the TF-IDF baseline by
`gate.baseline_margin` (unless that rule was switched off with a reason).

Its result (`EvalReport`, `Scores`) is in `tasks/results.py`; `score` and the confusion figure in
`tasks/judging/scoring.py` (the gate and the optimize stage score the same way); the rows people read in
`tasks/judging/report_rows.py`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from pydantic import BaseModel, ConfigDict, Field
from sklearn.dummy import DummyClassifier
from sklearn.metrics import confusion_matrix

from core import reporting
from core.errors import PipelineInputError
from core.retry import RetryPolicy
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.classifier import TextClassifier
from tasks.data.label_names import metric_names
from tasks.data.loaders import load_baseline, load_splits
from tasks.judging.quality import minimum, quality_rules
from tasks.judging.report_rows import evaluation_rows, rule_rows
from tasks.judging.scoring import confusion_figure, score
from tasks.kinds.classification.baseline import train_baseline
from tasks.kinds.classification.truncation_report import truncation_line
from tasks.results.classification import BaselineModel, EvalReport, FinetunedModel
from tasks.results.data import PreparedData
from tasks.results.scores import RuleResult, Scores
from tasks.stage_configs import QualityBar


class EvaluateConfig(BaseModel):
    """What "good enough to become champion" means at the end of a run."""

    model_config = ConfigDict(extra="forbid")

    min_macro_f1: float = Field(0.0, ge=0, le=1, description="The model must reach this macro-F1 on test.")
    batch_size: int = Field(64, gt=0)
    retry: RetryPolicy = RetryPolicy(retries=1)


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
    splits = load_splits(data)
    test = splits["test"]
    if len(test) == 0:
        raise PipelineInputError(f"the test split of {data.uri} is empty: nothing to evaluate on")
    labels = data.labels
    # Scored through the exported ONNX model: the numbers the gate and serving will see.
    baseline = train_baseline(splits, labels, data.fingerprint, ws)
    y_true, y_model, scores, (truncated, truncation) = _score_all(cfg, splits, labels, model, baseline)
    rules = verdict_rules(cfg, quality or QualityBar(), scores)
    reasons = [r.reason for r in rules if not r.passed]

    with (
        stage_run(tracking, "evaluate", parent_run_id, {"zero2one.data_fingerprint": data.fingerprint}) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name, s in scores.items():
            prefix = "test" if name == "model" else f"baseline_{name}"
            mlflow.log_metrics({f"{prefix}_accuracy": s.accuracy, f"{prefix}_macro_f1": s.macro_f1})
        names = metric_names(labels)  # label names are data: '?', '/', emoji ... are mapped (label_names.py)
        for lab, m in scores["model"].per_class.items():
            key = names[lab]
            mlflow.log_metrics({f"test_precision_{key}": m["precision"], f"test_recall_{key}": m["recall"]})
        mlflow.log_metric("test_truncated_share", truncated / len(test))
        mlflow.log_params({"baseline_C": baseline.c, "truncation": truncation})
        mlflow.set_tag("zero2one.eval_passed", str(not reasons).lower())
        out = Path(tmp)
        counts = confusion_matrix(y_true, y_model, labels=list(range(len(labels)))).tolist()
        title = f"Test split ({len(test)} texts): true vs predicted"
        confusion_figure(counts, labels, title).savefig(out / "confusion_matrix.png", dpi=110)
        (out / "metrics.json").write_text(json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=2))
        (out / "label_metric_names.json").write_text(json.dumps(names, indent=2, ensure_ascii=False))
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
        truncated=truncated,
        truncation=truncation,
    )
    _report(report, tracking)
    return report


def _score_all(
    cfg: EvaluateConfig, splits, labels: list[str], model: FinetunedModel, baseline: BaselineModel
) -> tuple[list[int], list[int], dict[str, Scores], tuple[int, str]]:
    """The true labels, the model's predictions, the scores of the model, the majority class and TF-IDF, and how
    many test texts the model saw cut (and how)."""
    train, test = splits["train"], splits["test"]
    classifier = TextClassifier(materialize(model.uri))
    if classifier.labels != labels:
        raise PipelineInputError(f"model {model.uri} predicts {classifier.labels}, the data has labels {labels}")
    y_true = list(test["label"])
    probs, cut = classifier.classify(list(test["text"]), batch_size=cfg.batch_size)
    y_model = [int(i) for i in probs.argmax(axis=1)]
    majority = DummyClassifier(strategy="most_frequent").fit(train["text"], train["label"])
    y_baseline = [labels.index(p) for p in load_baseline(baseline).predict(test["text"])]
    return (
        y_true,
        y_model,
        {
            "model": score(y_true, y_model, labels),
            "majority": score(y_true, list(majority.predict(test["text"])), labels),
            "tfidf_logreg": score(y_true, y_baseline, labels),
        },
        (int(cut.sum()), describe_truncation(classifier)),
    )


def describe_truncation(classifier: TextClassifier) -> str:
    """The rule a predictor cuts long texts by, in words."""
    rule = classifier.truncation
    if rule is None:
        return f"head: the first {classifier.max_length} tokens"
    return f"head_tail: the first {rule.head} and the last {rule.max_length - rule.head} of {rule.max_length} tokens"


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
        minimum("min_test_macro_f1", "macro-F1", model, cfg.min_macro_f1, "evaluate.min_macro_f1"),
    ]
    value, baseline = (getattr(scores[k], quality.metric) for k in ("model", "tfidf_logreg"))
    return rules + quality_rules(quality, value, baseline)


def _report(report: EvalReport, tracking: Tracking) -> None:
    png = tracking.artifact_url(report.mlflow_run_id, "evaluation/confusion_matrix.png")
    reporting.table("evaluate", evaluation_rows(report), description=f"Test split ({report.test_size} texts)")
    per_class = [{"class": k, **{m: round(v, 4) for m, v in d.items()}} for k, d in report.model.per_class.items()]
    verdict = "passed" if report.passed else "failed: " + "; ".join(report.reasons)
    rules = reporting.md_table(rule_rows(report.rules, values=False))
    reporting.markdown(
        "evaluate-summary",
        f"# Evaluation: {verdict}\n\n{reporting.md_table(evaluation_rows(report))}\n\n"
        f"Rules (the gate applies the same ones to its frozen set):\n\n{rules}\n\n"
        f"TF-IDF baseline: C={report.baseline.c if report.baseline else '-'} (chosen on the validation split)\n\n"
        f"{truncation_line(report)}\n\n"
        f"Per class:\n\n{reporting.md_table(per_class)}\n\n"
        f"![Confusion matrix on the test split]({png})\n\n"
        f"[Confusion matrix]({png}) and metrics.json in the MLflow run: "
        f"[{report.mlflow_run_id}]({tracking.run_url(report.mlflow_run_id)}) (and in `{report.uri}`)\n",
    )
    reporting.logger().info("evaluation %s: %s", verdict, evaluation_rows(report))
