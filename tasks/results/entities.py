"""Named-entity stage results: the prepared sentences, the fine-tuned tagger, entity-level scores and the report."""

from __future__ import annotations

from pydantic import BaseModel

from tasks.results.common import TunedModel
from tasks.results.data import ArrowSplits
from tasks.results.scores import EntityScores


class PreparedEntities(ArrowSplits):
    """Sentences as Arrow splits (`words`, `tags` in IOB2, `text`), the entity types and the scheme the files were
    written in (`tasks/kinds/entities/prepare.py`)."""

    types: list[str]
    scheme: str  # the source files' tag scheme, converted to IOB2
    corpus_size: int


class TaggedModel(TunedModel):
    """The fine-tuned token classifier (`tasks/kinds/entities/finetune.py`)."""

    labels: list[str]  # O, then B-/I- per type
    best_metric: float  # validation entity F1 of the kept epoch
    metric: str = "f1"


class EntityReport(BaseModel):
    """The tagger against the CRF and memorization baselines on the test split (`tasks/kinds/entities/evaluate.py`)."""

    model: EntityScores
    crf: EntityScores
    memorization: EntityScores
    test_size: int  # sentences
    passed: bool
    reasons: list[str]
    mlflow_run_id: str
    samples: list[dict] = []  # a few test sentences: gold and predicted entities


class OptimizedTagger(BaseModel):
    """The tagger as ONNX graphs, gated on parity (`tasks/kinds/entities/optimize.py`): the first of int8, int8-weights
    and fp32 whose words agree with PyTorch's tags at least `min_agreement` of the time serves; none: PyTorch does."""

    uri: str
    onnx_file: str | None  # the served graph under `uri`
    variant: str  # int8, int8-weights, fp32 or pytorch
    passed: bool
    verdict: str
    reasons: list[str]
    agreement: dict[str, float]  # variant -> share of entity words (either side not O) tagged as PyTorch tags them
    f1: dict[str, float]  # variant -> entity F1 on the parity sentences (pytorch included)
    sizes_mb: dict[str, float]
    eval_size: int
    mlflow_run_id: str
