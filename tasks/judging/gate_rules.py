"""The gate's relative rules: the evaluate verdict, the champion on the frozen set and on the newest rows, parity.

The absolute rules (minimum, TF-IDF baseline) live in `tasks/judging/quality.py`, shared with the evaluate
stage; `GateConfig` in `tasks/stage_configs.py`. Every rule returns a `RuleResult` whose reason names the numbers
it compared.
"""

from __future__ import annotations

from tasks.results import Compression, EvalReport, GenerationReport, OptimizedGenerator, OptimizedModel, RuleResult
from tasks.stage_configs import METRIC_NAMES, GateConfig


def evaluation_rule(report: EvalReport | GenerationReport) -> RuleResult:
    reason = "; ".join(report.reasons) if report.reasons else "passed every quality rule on its test split"
    value = "passed" if report.passed else "failed"
    return RuleResult(name="evaluation", passed=report.passed, value=value, reason=reason)


def champion_rule(
    cfg: GateConfig, new: float, old: float | None, champion_version: str | None, labels_differ: str | None
) -> RuleResult:
    """Challenger vs champion on the frozen set: `compare: beat` or `not_worse`, by `margin`."""
    if champion_version is None or old is None:
        return RuleResult(name="champion", passed=True, value="none", reason="no champion to compare with")
    if labels_differ:
        return RuleResult(name="champion", passed=False, value="labels differ", reason=labels_differ)
    needed = old + cfg.margin if cfg.compare == "beat" else old - cfg.margin
    ok = new >= needed - 1e-12
    rule = f"gate.compare={cfg.compare}, gate.margin={cfg.margin}: needs >= {needed:.4f}"
    return RuleResult(
        name="champion",
        passed=ok,
        value=f"{new:.4f} vs {old:.4f}",
        reason=f"{cfg.metric} {new:.4f} vs champion v{champion_version} {old:.4f} ({new - old:+.4f}); {rule}",
    )


def newest_rule(
    cfg: GateConfig, new: float | None, old: float | None, rows: int, champion_version: str | None
) -> RuleResult:
    """Not worse than the champion on the newest test rows alone (those not in the champion's own test split).

    After drift these are the labeled window's held-out rows: diluted in the frozen set, a model that
    got worse on exactly the data that changed could still pass the champion rule.
    """
    name = "newest"
    if not cfg.newest_rule:
        return RuleResult(name=name, passed=True, value="off", reason="switched off (gate.newest_rule=false)")
    if champion_version is None:
        return RuleResult(name=name, passed=True, value="none", reason="no champion to compare with")
    if rows < cfg.newest_min_rows or new is None or old is None:
        return not_judged(name, rows, cfg.newest_min_rows, f"test rows are new since champion v{champion_version}")
    needed = old - cfg.newest_margin
    ok = new >= needed - 1e-12
    return RuleResult(
        name=name,
        passed=ok,
        value=f"{new:.4f} vs {old:.4f}",
        reason=f"{METRIC_NAMES[cfg.metric]} on the {rows} newest test rows {new:.4f} vs champion v{champion_version} "
        f"{old:.4f} ({new - old:+.4f}); gate.newest_margin={cfg.newest_margin}: needs >= {needed:.4f}",
    )


def not_judged(name: str, rows: int, needed: int, what: str) -> RuleResult:
    """A comparison on too few rows: it passes, but says it judged nothing ("not judged: 7 new rows < 20")."""
    return RuleResult(
        name=name,
        passed=True,
        value=f"{rows} new rows < {needed}",
        reason=f"{rows} new rows < gate.newest_min_rows={needed} ({rows} {what}; too few to compare)",
        state="not judged",
    )


def parity_rule(optimized: OptimizedModel | OptimizedGenerator | bool | None) -> RuleResult:
    """The optimize stage's verdict: an ONNX graph that matches PyTorch serves (fails when none passed parity).

    `optimized` is the stage's result (either track) or, from older callers, only whether it passed.
    """
    if optimized is None:
        return RuleResult(name="parity", passed=True, value="not run", reason="the optimization stage did not run")
    if isinstance(optimized, bool):
        why = "optimized model matches the original" if optimized else "optimized model differs"
        return RuleResult(name="parity", passed=optimized, value="passed" if optimized else "failed", reason=why)
    why = "; ".join([optimized.verdict, *optimized.reasons])
    if not optimized.passed:
        why += " (a graph that differs from the evaluated model never serves; to ship PyTorch on purpose, set "
        why += "optimize.enabled=false or optimize_generation.enabled=false)"
    value = f"onnx-{optimized.variant}" if optimized.passed else "pytorch (no graph passed)"
    return RuleResult(name="parity", passed=optimized.passed, value=value, reason=why)


def compression_rule(
    compression: Compression, checkpoint_uri: str | None, optimized: OptimizedModel | bool | None
) -> RuleResult:
    """The compress stage's floor (#27): a student that kept it serves; one below it never does, the teacher does.

    Passes when the registered checkpoint is the one the floor chose: the student that kept `quality_floor` of the
    teacher and beat TF-IDF, or the teacher when every candidate was refused (the reason names the rule that refused
    each). Fails when anything else was registered: a refused student must not reach serving by any path.
    """
    if compression.passed:
        who, expected = "student", compression.uri
        value = (
            f"student serves: {compression.teacher_layers} -> {compression.student_layers} layers, "
            f"{compression.kept_ratio:.1%} of the teacher kept"
        )
    else:
        who, expected, value = "teacher", compression.teacher_uri, "student refused: the teacher serves"
    if checkpoint_uri != expected:
        return RuleResult(
            name="compression",
            passed=False,
            value=f"{checkpoint_uri} registered",
            reason=f"the compress stage chose the {who} ({expected}), but {checkpoint_uri} was registered; "
            f"{compression.reason}",
        )
    onnx = isinstance(optimized, OptimizedModel) and optimized.passed and optimized.onnx_file
    graph = f"{optimized.variant} ONNX graph" if onnx else "PyTorch model"
    return RuleResult(
        name="compression", passed=True, value=value, reason=f"{compression.reason}; the {who}'s {graph} is registered"
    )
