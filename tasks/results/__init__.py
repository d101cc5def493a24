"""The contract between stages: every stage's result type (pydantic only), one module per concern.

A stage imports the results of the stages before it from here, or from the module here that defines the type
(`from tasks.results.data import PreparedData`: it then stands on that leaf alone), never from the stage itself, so
stages do not stand on each other, and a service or a test that only reads a result loads no torch, MLflow or
transformers. Modules: `common`, `data` (prepared splits, tokenizers), one per model kind
(`classification`, `generation`, `entities`, `answers`), `scores` (every kind's scores and rule results,
which the gate's verdict holds) and `registry` (versions, the gate's verdict, promotions). Registry tag, alias and
event names live in `core/registry_names.py`; configs that more than one stage reads in `tasks/stage_configs.py`.
"""

from tasks.results.answers import AnsweringModel, AnswersReport, OptimizedReader, PreparedQuestions
from tasks.results.classification import (
    BaselineModel,
    Compression,
    EncoderArtifact,
    EvalReport,
    FinetunedModel,
    OptimizedModel,
    Parity,
    TrialResult,
    TuneResult,
    with_settings,
)
from tasks.results.common import METRIC_LABELS, SPLITS, C, Messages, PretrainedModel, TunedModel, Variant
from tasks.results.data import ArrowSplits, PreparedData, PreparedInstructions, RetrainData, TokenizerArtifact
from tasks.results.entities import EntityReport, OptimizedTagger, PreparedEntities, TaggedModel
from tasks.results.generation import (
    DecoderArtifact,
    GenerationParity,
    GenerationReport,
    InstructionTunedModel,
    OptimizedGenerator,
)
from tasks.results.registry import Champion, GateVerdict, Lineage, Promotion, RegisteredModel
from tasks.results.scores import AnswerScores, EntityScores, GenerationScores, RuleResult, Scores

# Any model kind's result of each box of the flow (a new kind adds its types here).
Prepared = PreparedData | PreparedInstructions | PreparedEntities | PreparedQuestions
Trained = FinetunedModel | InstructionTunedModel | TaggedModel | AnsweringModel
Evaluation = EvalReport | GenerationReport | EntityReport | AnswersReport
Optimized = OptimizedModel | OptimizedGenerator | OptimizedTagger | OptimizedReader

__all__ = [
    "Compression",
    "Champion",
    "RetrainData",
    "Evaluation",
    "Optimized",
    "Prepared",
    "Trained",
    "EntityReport",
    "OptimizedTagger",
    "EntityScores",
    "PreparedEntities",
    "TaggedModel",
    "AnswerScores",
    "AnsweringModel",
    "AnswersReport",
    "OptimizedReader",
    "PreparedQuestions",
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
