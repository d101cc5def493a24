"""The quality bar a model must clear, shared by the evaluate stage's verdict and the gate.

One set of rule functions, so "passed" means the same on every screen: the evaluate stage applies
them on the test split, the gate on its frozen set (the same rows when there is no champion).
Both stages import it without importing each other. The bar itself (`QualityBar`) is a config both read, in
`tasks/stage_configs.py`; `RuleResult` is in `tasks/results.py`.
"""

from __future__ import annotations

from tasks.results.scores import RuleResult
from tasks.stage_configs import METRIC_NAMES, QualityBar


def min_rule(bar: QualityBar, value: float) -> RuleResult:
    """Reach `min_value`; a minimum of 0 (the default) is "not set": every model reaches it, so it says so."""
    return minimum(f"min_{bar.metric}", bar.metric, value, bar.min_value, "gate.min_value")


def minimum(name: str, label: str, value: float, needed: float, setting: str) -> RuleResult:
    """`value` >= `needed` (the config `setting`); state "not set" where `needed` is 0 and nothing can fail it."""
    if needed <= 0:
        reason = f"{setting}=0: every model passes it ({label} {value:.4f}); set it to require a minimum"
        return RuleResult(name=name, passed=True, value="not set", reason=reason, state="not set")
    ok = value >= needed
    reason = f"{label} {value:.4f} {'>=' if ok else '<'} {setting}={needed}"
    return RuleResult(name=name, passed=ok, value=f"{value:.4f}", reason=reason)


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
