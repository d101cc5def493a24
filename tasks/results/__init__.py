"""The contract between stages: every stage's result type (pydantic only), one module per concern.

A stage imports the results of the stages before it from here (`from tasks.results import ...`), never the stage
itself, so stages do not stand on each other, and a service or a test that only reads a result loads no torch,
MLflow or transformers. Modules: `data` (prepared splits, tokenizers), `classification`, `generation`, and
`registry` (versions, the gate's verdict, promotions). Registry tag, alias and event names live in
`core/registry_names.py`; configs that more than one stage reads in `tasks/stage_configs.py`.
"""

from tasks.results.classification import (
    BaselineModel,
    EncoderArtifact,
    EvalReport,
    FinetunedModel,
    OptimizedModel,
    Parity,
    PretrainedModel,
    RuleResult,
    Scores,
    TrialResult,
    TunedModel,
    TuneResult,
    with_settings,
)
from tasks.results.common import METRIC_LABELS, SPLITS, C, Messages, Variant
from tasks.results.data import ArrowSplits, PreparedData, PreparedInstructions, TokenizerArtifact
from tasks.results.generation import (
    DecoderArtifact,
    GenerationParity,
    GenerationReport,
    GenerationScores,
    InstructionTunedModel,
    OptimizedGenerator,
)
from tasks.results.registry import GateVerdict, Lineage, Promotion, RegisteredModel

__all__ = [
    "ArrowSplits",
    "BaselineModel",
    "C",
    "DecoderArtifact",
    "EncoderArtifact",
    "EvalReport",
    "FinetunedModel",
    "GateVerdict",
    "GenerationParity",
    "GenerationReport",
    "GenerationScores",
    "InstructionTunedModel",
    "Lineage",
    "METRIC_LABELS",
    "Messages",
    "OptimizedGenerator",
    "OptimizedModel",
    "Parity",
    "PreparedData",
    "PreparedInstructions",
    "PretrainedModel",
    "Promotion",
    "RegisteredModel",
    "RuleResult",
    "SPLITS",
    "Scores",
    "TokenizerArtifact",
    "TrialResult",
    "TuneResult",
    "TunedModel",
    "Variant",
    "with_settings",
]
