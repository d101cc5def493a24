"""Extractive question answering as a model kind: a pretrained encoder fine-tuned into a span reader, judged on
SQuAD (or CMRC) F1 against a lexical baseline, served as ONNX int8 where its answers agree with PyTorch's.

Not built yet (said where they are asked for): the from-scratch path (our tokenizer + MLM pretraining reads
`text`/`label` splits), drift monitoring (the per-answer descriptors exist: `monitor.py`) and retraining.
"""

from __future__ import annotations

import json

from core.errors import PipelineInputError
from tasks.kinds.answers import card
from tasks.kinds.answers.evaluate_stage import evaluate_answers, evaluation_rows
from tasks.kinds.answers.finetune_stage import finetune_answers
from tasks.kinds.answers.gate_stage import gate_answers
from tasks.kinds.answers.optimize_stage import optimize_answers
from tasks.kinds.answers.prepare_stage import prepare_questions
from tasks.kinds.answers.register_stage import EXAMPLE, register_answers
from tasks.kinds.kind import ModelKind, Sections
from tasks.results import AnswersReport, PreparedQuestions
from tasks.training.pretrain import pretrain
from tasks.training.tokenizer import train_tokenizer


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


def _not_yet(what: str):
    def refuse(*args, **kwargs):
        raise PipelineInputError(f"{what} is not built for question answerers yet (tasks/kinds/answers/kind.py)")

    return refuse


ANSWERS = ModelKind(
    name="answers",
    report=AnswersReport,
    sections=Sections("answer_data", "tokenizer", "pretrain", "answer_finetune", "answer_evaluate", "answer_optimize"),
    prepare=prepare_questions,
    tokenizer=train_tokenizer,
    pretrain=pretrain,
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
    detect_drift=_not_yet("drift monitoring"),
    retrain_data=_not_yet("retraining"),
    retrain_settings=_not_yet("retraining"),
    from_scratch=False,
)
