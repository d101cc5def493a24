"""The gate stage: may the new version (the challenger) replace the champion? The model kind of the evaluation
judges (`ModelKind.gate`): `tasks/kinds/classification/gate.py` for classifiers (macro-F1 or accuracy against the
TF-IDF baseline), `tasks/kinds/generation/gate.py` for generators (chrF or exact match against the untuned model and
retrieval). The rules they share are in `gate_rules.py` and `quality.py`, the records they leave in
`gate_records.py`. The gate moves no alias: `tasks/registry/promotion.py` does.
"""

from __future__ import annotations

from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.registry import kind_of
from tasks.results import (
    Compression,
    EvalReport,
    GateVerdict,
    GenerationReport,
    OptimizedGenerator,
    OptimizedModel,
    PreparedData,
    PreparedInstructions,
    RegisteredModel,
)
from tasks.stage_configs import EvaluateGenerationConfig, GateConfig


def gate(
    cfg: GateConfig,
    data: PreparedData | PreparedInstructions,
    registered: RegisteredModel,
    report: EvalReport | GenerationReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    optimization_passed: bool | None = None,
    generation: EvaluateGenerationConfig | None = None,
    optimized: OptimizedModel | OptimizedGenerator | None = None,
    compression: Compression | None = None,
) -> GateVerdict:
    """Judge `registered` on the frozen set with its kind's gate and record the verdict.

    `optimized` (the optimize stage's result) is the parity rule; `optimization_passed` is the older way to say only
    whether it passed. `generation` is how a generator's gate generates (the evaluate_generation settings).
    `compression` (the compress stage's result, classifiers only) is the compression rule: which model the floor chose.
    """
    parity = optimized if optimized is not None else optimization_passed
    judge = kind_of(report).gate
    extra = {"compression": compression} if compression is not None else {}  # only the kinds that compress take it
    return judge(cfg, data, registered, report, tracking, ws, parent_run_id, parity, settings=generation, **extra)
