"""What the answers evaluation, optimization and gate compute the same way: scores, the lexical baseline, reading
questions with a model, and the absolute rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tasks.judging.quality import minimum
from tasks.kinds.answers import baselines
from tasks.kinds.answers.metrics import score as corpus_score
from tasks.kinds.answers.reader import QAExample
from tasks.results.scores import AnswerScores, RuleResult
from tasks.stage_configs import QualityBar


def score(examples: Sequence[QAExample], predicted: Mapping[str, str], scoring: str) -> AnswerScores:
    """Exact match and F1 over `examples` as fractions (metrics.py reports percent, as the field does)."""
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    s = corpus_score(predicted, golds, scoring)
    return AnswerScores(exact_match=s["exact_match"] / 100, f1=s["f1"] / 100, questions=len(examples))


def lexical(validation: Sequence[QAExample], scoring: str) -> tuple[int, baselines.LexicalConfig]:
    """The lexical baseline's window width, chosen on validation (its one knob)."""
    cfg = baselines.LexicalConfig()
    width, _ = baselines.fit_width(validation, cfg, scoring)
    return width, cfg.model_copy(update={"width": width})


def lexical_answers(examples: Sequence[QAExample], width: int) -> dict[str, str]:
    return baselines.predict(examples, width)


def read(reader, examples: Sequence[QAExample]) -> dict:
    """Question id -> `Span` of a `models.span_reader.SpanReader`."""
    spans = reader.spans([ex.question for ex in examples], [ex.context for ex in examples])
    return {ex.id: s for ex, s in zip(examples, spans, strict=True)}


def texts(spans: Mapping) -> dict[str, str]:
    return {q: s.text for q, s in spans.items()}


def answer_rules(bar: QualityBar, f1: float, lexical_f1: float) -> list[RuleResult]:
    """The minimum and "beats the lexical baseline by `baseline_margin`", as the classifier's bar has them against
    TF-IDF."""
    beats = f1 > lexical_f1 + 1e-12 and f1 - lexical_f1 >= bar.baseline_margin - 1e-12
    text = f"answer F1 {f1:.4f} {'beats' if beats else 'does not beat'} the lexical baseline {lexical_f1:.4f}"
    text += f" (+{bar.baseline_margin:.3f} margin)"
    if not bar.baseline_rule:
        rule = RuleResult(name="baseline", passed=True, value="off", reason=f"switched off: {text}")
    else:
        rule = RuleResult(name="baseline", passed=beats, value=f"{f1:.4f} vs {lexical_f1:.4f}", reason=text)
    return [minimum("min_f1", "answer F1", f1, bar.min_value, "gate.min_value"), rule]


def samples(examples: Sequence[QAExample], predicted: Mapping[str, str], n: int) -> list[dict]:
    """A few questions with their gold and predicted answers, for the card (long answers cut to 200 characters)."""

    def short(text: str) -> str:
        return text if len(text) <= 200 else text[:200] + "..."

    return [
        {
            "question": short(ex.question),
            "gold": short(" | ".join(a.text for a in ex.answers) or "(no answer)"),
            "predicted": short(predicted.get(ex.id, "") or "(no answer)"),
        }
        for ex in list(examples)[:n]
    ]
