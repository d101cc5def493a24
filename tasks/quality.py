"""The quality bar a model must clear, shared by the evaluate stage's verdict and the gate.

One set of rule functions, so "passed" means the same on every screen: the evaluate stage applies
them on the test split, the gate on its frozen set (the same rows when there is no champion).
Pydantic only: both stages import it without importing each other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Metric = Literal["macro_f1", "accuracy"]
METRIC_NAMES = {"macro_f1": "macro-F1", "accuracy": "accuracy"}


class RuleResult(BaseModel):
    name: str
    passed: bool
    value: str
    reason: str


class QualityBar(BaseModel):
    """The absolute rules: a minimum, and beating the TF-IDF + logistic regression baseline on the same rows."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric = Field("macro_f1", description="The number the rules compare.")
    min_value: float = Field(0.0, ge=0, le=1, description="The model must reach this on the rows judged.")
    baseline_rule: bool = Field(
        True, description="Refuse a model that does not beat the TF-IDF baseline by `baseline_margin`."
    )
    baseline_margin: float = Field(0.0, ge=0, le=1, description="How much the model must beat the baseline by.")
    baseline_rule_off_reason: str | None = Field(
        None, description="Why the baseline rule is off (required when baseline_rule=false; recorded in the verdict)."
    )

    @model_validator(mode="after")
    def _off_needs_a_reason(self) -> QualityBar:
        if not self.baseline_rule and not (self.baseline_rule_off_reason or "").strip():
            raise ValueError(
                "gate.baseline_rule=false needs gate.baseline_rule_off_reason: say why a model that may be worse "
                "than TF-IDF + logistic regression can ship (it is recorded with the verdict)"
            )
        return self


def min_rule(bar: QualityBar, value: float) -> RuleResult:
    ok = value >= bar.min_value
    return RuleResult(
        name=f"min_{bar.metric}",
        passed=ok,
        value=f"{value:.4f}",
        reason=f"{bar.metric} {value:.4f} {'>=' if ok else '<'} gate.min_value={bar.min_value}",
    )


def baseline_rule(bar: QualityBar, value: float, baseline: float) -> RuleResult:
    """Pass when `value` beats the baseline (strictly) by at least `baseline_margin`."""
    name = METRIC_NAMES[bar.metric]
    beats = value > baseline + 1e-12 and value - baseline >= bar.baseline_margin - 1e-12
    numbers = f"the TF-IDF baseline {baseline:.4f} (+{bar.baseline_margin:.3f} margin)"
    text = f"{name} {value:.4f} {'beats' if beats else 'does not beat'} {numbers}"
    if not bar.baseline_rule:
        return RuleResult(
            name="baseline", passed=True, value="off", reason=f"switched off ({bar.baseline_rule_off_reason}): {text}"
        )
    return RuleResult(name="baseline", passed=beats, value=f"{value:.4f} vs {baseline:.4f}", reason=text)


def quality_rules(bar: QualityBar, value: float, baseline: float) -> list[RuleResult]:
    """The rules both the evaluate stage and the gate apply, in the order the gate lists them."""
    return [min_rule(bar, value), baseline_rule(bar, value, baseline)]
