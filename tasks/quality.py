"""The quality bar a model must clear, shared by the evaluate stage's verdict and the gate.

One set of rule functions, so "passed" means the same on every screen: the evaluate stage applies
them on the test split, the gate on its frozen set (the same rows when there is no champion).
Both stages import it without importing each other. The bar itself (`QualityBar`) is a config both read, in
`tasks/stage_configs.py`; `RuleResult` is in `tasks/artifacts.py`.
"""

from __future__ import annotations

from tasks.artifacts import RuleResult
from tasks.stage_configs import METRIC_NAMES, QualityBar


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
