"""Extractive question answering stage results: the prepared questions, the fine-tuned reader, exact match and F1,
the report against the lexical baseline, and the reader's ONNX graphs."""

from __future__ import annotations

from pydantic import BaseModel

from tasks.results.common import TunedModel
from tasks.results.data import ArrowSplits
from tasks.results.scores import AnswerScores


class PreparedQuestions(ArrowSplits):
    """Questions as Arrow splits (`id`, `question`, `context`, `answer_texts`, `answer_starts`, `doc_id`, `text` = the
    question), cut by article so no context is in two splits (`tasks/kinds/answers/prepare_stage.py`)."""

    scoring: str  # "squad" (SQuAD v1.1 normalisation) or "cmrc" (CMRC 2018 character-level, for Chinese)
    language: str  # "zh" when most context characters are Chinese, else "en"
    articles: dict[str, int]  # split -> distinct articles (or contexts) in it
    no_answer: dict[str, int]  # split -> questions marked is_impossible
    repaired: int = 0  # answer_starts moved to the nearest copy of their text (answer_data.offsets=repair)
    corpus_size: int  # distinct training contexts (the corpus folder)


class AnsweringModel(TunedModel):
    """The fine-tuned span reader (`tasks/kinds/answers/finetune_stage.py`): a question-answering head on the
    encoder, with the window and decoding settings it is served with (`answers_meta.json` in its folder)."""

    max_answer_tokens: int
    null_threshold: float | None = None  # tuned on validation when it holds unanswerable questions
    validation_f1: float | None = None  # on `answer_finetune.validation_questions` questions; None when 0
    train_windows: int = 0
    metric: str = "f1"


class AnswersReport(BaseModel):
    """The reader against the lexical baseline (and the untrained head, the floor) on the test split
    (`tasks/kinds/answers/evaluate_stage.py`)."""

    model: AnswerScores
    lexical: AnswerScores  # TF-IDF sentence + best window of `lexical_width` tokens: the gate's baseline
    lexical_width: int
    floor: AnswerScores | None = None  # the same checkpoint with a fresh QA head, on its first questions
    scoring: str
    test_size: int  # questions scored
    passed: bool
    reasons: list[str]
    mlflow_run_id: str
    samples: list[dict] = []  # a few test questions: gold and predicted answers


class OptimizedReader(BaseModel):
    """The reader as ONNX graphs, gated on parity (`tasks/kinds/answers/optimize_stage.py`): the first of int8,
    int8-weights and fp32 whose decoded spans agree with PyTorch's on at least `min_agreement` of the questions
    serves; none: PyTorch."""

    uri: str
    onnx_file: str | None  # the served graph under `uri`
    variant: str  # int8, int8-weights, fp32 or pytorch
    passed: bool
    verdict: str
    reasons: list[str]
    agreement: dict[str, float]  # variant -> share of questions answered with the same span as PyTorch
    f1: dict[str, float]  # variant -> F1 on the parity questions (pytorch included)
    sizes_mb: dict[str, float]
    eval_size: int
    mlflow_run_id: str
