"""`PipelineConfig`: every setting of a run, one typed tree with defaults that work.

Each stage owns its section (`tasks/<stage>.py`); this module composes them, loads YAML
presets from `configs/`, and applies `--set a.b.c=value` overrides. Unknown keys and wrong
types fail with the full dotted name of the key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from flows.placement import PlacementConfig
from flows.raw_config import ConfigFileError, load_raw, override_for
from tasks.data import DataConfig
from tasks.errors import PipelineInputError
from tasks.evaluate import EvaluateConfig
from tasks.finetune import FinetuneConfig
from tasks.gate import GateConfig
from tasks.optimize import OptimizeConfig
from tasks.pretrain import PretrainConfig
from tasks.register import RegisterConfig
from tasks.tokenizer import TokenizerConfig
from tasks.tracking import TrackingConfig
from tasks.training import check_divisible
from tasks.tune import TuneConfig
from tasks.workspace import Workspace


class PipelineConfig(BaseModel):
    """All settings of one pipeline run. The defaults train the tiny demo model on the demo data."""

    model_config = ConfigDict(extra="forbid")

    workspace: Workspace = Workspace()
    tracking: TrackingConfig = TrackingConfig()
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    pretrain: PretrainConfig = PretrainConfig()
    tune: TuneConfig = TuneConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    optimize: OptimizeConfig = OptimizeConfig()
    registry: RegisterConfig = RegisterConfig()
    gate: GateConfig = GateConfig()
    placement: PlacementConfig = PlacementConfig()

    @model_validator(mode="after")
    def _encoder_source(self) -> PipelineConfig:
        if not self.pretrain.enabled and not self.finetune.base_model:
            raise ValueError("pretrain.enabled=false needs finetune.base_model (a checkpoint to fine-tune)")
        return self

    @model_validator(mode="after")
    def _tune_batches(self) -> PipelineConfig:
        if self.tune.enabled:  # every batch size the search may pick must split evenly across the processes
            for size in self.tune.search.batch_size:
                check_divisible(
                    self.finetune.optim.model_copy(update={"batch_size": size}), self.finetune.nproc_per_node
                )
        return self

    def tokenizer_for_run(self) -> TokenizerConfig:
        """Fine-tuning an existing checkpoint without pretraining: use that checkpoint's tokenizer."""
        if not self.pretrain.enabled and self.tokenizer.pretrained is None:
            return self.tokenizer.model_copy(update={"pretrained": self.finetune.base_model})
        return self.tokenizer


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def validate(data: dict, source: str = "config", overrides: list[str] | None = None) -> PipelineConfig:
    """`source` names the file; a key that came from one of `overrides` is named by its `--set`."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        problems, from_overrides = [], []
        for err in e.errors():
            key = _dotted(err["loc"]) or "(top level)"
            item = override_for(key, overrides or [])
            from_overrides.append(item is not None)
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown key" + (f" (from --set {item})" if item else ""))
            else:
                via = f", from --set {item}" if item else ""
                problems.append(f"{key}: {err['msg']} (got {err.get('input')!r}{via})")
        if all(from_overrides):
            source = "override" if len(problems) == 1 else "overrides"
        raise PipelineInputError(f"invalid {source}:\n  " + "\n  ".join(problems)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Defaults, then the YAML file, then the `--set` overrides, validated together."""
    try:
        data = load_raw(path, overrides)
    except ConfigFileError as e:
        raise PipelineInputError(str(e)) from None
    return validate(data, source=str(path) if path else "config", overrides=overrides)
