"""Extractive question answering as a model kind: an encoder (a checkpoint, or pretrained here) fine-tuned into a
span reader, judged on SQuAD (or CMRC) F1 against a lexical baseline, served as ONNX int8 where its answers agree
with PyTorch's.

Served on `POST /predict` as {question, context} pairs (`serving/answers_api.py`); watched by question, context and
answer length, no-answer rate and confidence against its held-out questions (`tasks/monitoring/answer_detect.py`);
retrained on newly labelled questions from a file merged with its own (`tasks/monitoring/answer_retrain_data.py`):
served questions carry no gold answers.

From scratch (`pretrain.enabled`, no `answer_finetune.base_model`): the classifier's tokenizer and masked-LM stages
on the training contexts and questions (`pretraining.py`), then a question-answering head on that encoder.
"""

from __future__ import annotations

import json

from tasks.kinds.answers import card
from tasks.kinds.answers.evaluate_stage import evaluate_answers, evaluation_rows
from tasks.kinds.answers.finetune_stage import finetune_answers
from tasks.kinds.answers.gate_stage import gate_answers
from tasks.kinds.answers.optimize_stage import optimize_answers
from tasks.kinds.answers.prepare_stage import prepare_questions
from tasks.kinds.answers.pretraining import pretrain_answers, tokenize_answers
from tasks.kinds.answers.register_stage import EXAMPLE, register_answers
from tasks.kinds.answers.retraining import retrain_settings
from tasks.kinds.kind import ModelKind, Sections
from tasks.monitoring.answer_detect import detect_for_champion
from tasks.monitoring.answer_retrain_data import write_answer_retrain_data
from tasks.results import AnswersReport, PreparedQuestions


def headline(report: AnswersReport) -> dict[str, float]:
    """The pipeline run's metrics: the runs table compares runs without opening them."""
    return {
        "test_answer_f1": report.model.f1,
        "test_answer_exact_match": report.model.exact_match,
        "lexical_f1": report.lexical.f1,
    }


def sample_text(data: PreparedQuestions) -> str | None:
    """A test question with the sentence holding its answer as the context (short enough to paste), as JSON."""
    from tasks.kinds.answers.baselines import sentences
    from tasks.kinds.answers.prepare_stage import questions

    for ex in questions(data, "test", limit=50):
        gold = next((a for a in ex.answers if a.start >= 0), None)
        if gold is not None:
            s, e = next(((s, e) for s, e in sentences(ex.context) if s <= gold.start < e), (0, len(ex.context)))
            context = ex.context[s : max(e, gold.start + len(gold.text))].strip()
            return json.dumps({"question": ex.question, "context": context}, ensure_ascii=False)
    return None


def try_it(workspace: str, model: str, sample: str | None) -> str:
    """The reader pyfunc on one question and its context."""
    row = json.loads(sample) if sample else EXAMPLE
    return f'mlflow.pyfunc.load_model("models:/{model}").predict([{json.dumps(row, ensure_ascii=False)}])'


ANSWERS = ModelKind(
    name="answers",
    report=AnswersReport,
    sections=Sections("answer_data", "tokenizer", "pretrain", "answer_finetune", "answer_evaluate", "answer_optimize"),
    prepare=prepare_questions,
    tokenizer=tokenize_answers,
    pretrain=pretrain_answers,
    finetune=finetune_answers,
    evaluate=evaluate_answers,
    optimize=optimize_answers,
    gate=gate_answers,
    register=register_answers,
    headline=headline,
    comparison_rows=evaluation_rows,
    card_sections=card.card_sections,
    card_numbers=card.card_numbers,
    served_numbers=card.served_numbers,
    card_figure=card.card_figure,
    sample_text=sample_text,
    try_it=try_it,
    detect_drift=detect_for_champion,
    retrain_data=write_answer_retrain_data,
    retrain_settings=retrain_settings,
)
