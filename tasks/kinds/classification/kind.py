"""Text classification as a model kind: an encoder (pretrained here or a checkpoint) fine-tuned into a classifier,
judged on macro-F1 or accuracy against TF-IDF + logistic regression, served as ONNX int8 where parity holds."""

from __future__ import annotations

import shlex

from tasks.data.loaders import load_splits
from tasks.data.prepare import prepare_data
from tasks.judging.report_rows import evaluation_rows
from tasks.kinds.classification import card
from tasks.kinds.classification.compress import compress_classifier
from tasks.kinds.classification.evaluate import evaluate
from tasks.kinds.classification.finetune import finetune
from tasks.kinds.classification.gate import gate_classifier
from tasks.kinds.classification.register import register_classifier
from tasks.kinds.classification.retraining import retrain_settings
from tasks.kinds.classification.tune import tune
from tasks.kinds.kind import ModelKind, Sections
from tasks.monitoring.detect import detect_for_champion
from tasks.monitoring.retrain_data import write_retrain_data
from tasks.optimize.stage import optimize
from tasks.results.classification import EvalReport
from tasks.results.data import PreparedData
from tasks.training.pretrain import pretrain
from tasks.training.tokenizer import train_tokenizer


def headline(report: EvalReport) -> dict[str, float]:
    """The pipeline run's metrics: the runs table compares runs without opening them."""
    return {
        "test_macro_f1": report.model.macro_f1,
        "test_accuracy": report.model.accuracy,
        "tfidf_macro_f1": report.tfidf_logreg.macro_f1,
    }


def sample_text(data: PreparedData, longest: int = 100) -> str | None:
    """A short text of the user's own test split: the summary's `try it` classifies something the user knows."""
    texts = load_splits(data)["test"]["text"]
    return next((t for t in texts if 0 < len(t.strip()) <= longest), texts[0][:longest] if texts else None)


def try_it(workspace: str, model: str, sample: str | None) -> str:
    """`zero2one predict` on the sample text."""
    text = shlex.quote(sample or "a text like your training data")
    return f"zero2one predict --workspace {workspace} --model {model} {text}"


CLASSIFICATION = ModelKind(
    name="classification",
    report=EvalReport,
    sections=Sections("data", "tokenizer", "pretrain", "finetune", "evaluate", "optimize"),
    prepare=prepare_data,
    tokenizer=train_tokenizer,
    pretrain=pretrain,
    finetune=finetune,
    evaluate=evaluate,
    optimize=optimize,
    gate=gate_classifier,
    register=register_classifier,
    headline=headline,
    comparison_rows=evaluation_rows,
    card_sections=card.card_sections,
    card_numbers=card.card_numbers,
    served_numbers=card.served_numbers,
    card_figure=card.card_figure,
    sample_text=sample_text,
    try_it=try_it,
    detect_drift=detect_for_champion,
    retrain_data=write_retrain_data,
    retrain_settings=retrain_settings,
    tune=tune,
    compress=compress_classifier,
)
