"""Every model kind's scores and the rule results of quality and gate rules: what a gate verdict compares.

Apart from the kinds' modules because `registry.py` (the gate's verdict) holds any kind's scores: this module
stands on nothing, so the contract stays two floors high. Each kind's module re-exports its scores.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class RuleResult(BaseModel):
    """One quality or gate rule: passed or not, the value it judged, and why (`tasks/judging/quality.py`,
    `gate_rules.py`).

    `state` says whether the rule judged anything: "not judged" (too few rows to compare) and "not set" (a minimum
    of 0, which every model reaches) pass, but screens show the state instead of "pass".
    """

    name: str
    passed: bool
    value: str
    reason: str
    state: Literal["judged", "not judged", "not set"] = "judged"


class Scores(BaseModel):
    """A classifier's numbers on one set of rows (`tasks/judging/scoring.py`)."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]] = {}


class GenerationScores(BaseModel):
    """A generator's numbers on one set of prompts (`tasks/judging/scoring.py`)."""

    exact_match: float  # share of answers equal to the reference (whitespace-trimmed)
    chrf: float  # corpus chrF, 0-100
    perplexity: float | None = None  # of the reference answers' tokens; None for retrieval
    rouge_l: float | None = None  # mean ROUGE-L F1, 0-100 (rouge-score, stemmed); None where not computed


class EntityScores(BaseModel):
    """Strict entity-level scores (seqeval, IOB2): an entity counts only where its span and type both match."""

    precision: float
    recall: float
    f1: float  # micro F1 over all entities: the gate's metric
    macro_f1: float  # the mean of the types' F1
    per_type: dict[str, float] = {}  # type -> F1


class AnswerScores(BaseModel):
    """Exact match and token F1 as fractions (0-1, as the gate's other metrics): the max over a question's gold
    answers; SQuAD v1.1's normalisation, or CMRC 2018's character-level scores for Chinese."""

    exact_match: float
    f1: float  # the gate's metric
    questions: int = 0
