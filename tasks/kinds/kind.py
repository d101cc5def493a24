"""`ModelKind`: the Task abstraction (#24). One object per model kind declares everything kind-specific; the flow,
the CLI, the gate, registration, the model card, monitoring and retraining ask it, and nothing else tests a kind's
name or the type of a report.

Adding a kind: a package under `tasks/kinds/` whose `kind.py` builds one `ModelKind`, one line in
`tasks/kinds/registry.py`, and its config sections in `flows/config.py` (see the README's "Adding a model kind").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

Stage = Callable[..., Any]  # a plain stage function (`tasks/`), wrapped as a Prefect task by the flow


class Sections(NamedTuple):
    """The config sections a kind's stages read, in the flow's order (keys of `PipelineConfig`)."""

    data: str
    tokenizer: str
    pretrain: str
    finetune: str
    evaluate: str
    optimize: str


@dataclass(frozen=True)
class ModelKind:
    """Everything that differs between model kinds; the pipeline runs the same boxes in the same order for each."""

    name: str  # `task:` in a preset, the registry tag `zero2one.task`
    report: type  # its evaluation report (`tasks/results.py`): how a report names its kind
    sections: Sections
    # the stages, in the flow's order (registration, the gate and promotion are shared and ask the kind below)
    prepare: Stage
    tokenizer: Stage
    pretrain: Stage
    finetune: Stage
    evaluate: Stage
    optimize: Stage  # ONNX graphs of the model, gated on parity with PyTorch
    # judging and the registry
    gate: Stage  # (cfg, data, registered, report, tracking, ws, parent_run_id, parity, settings=) -> GateVerdict
    register: Stage  # (cfg, data, model, report, lineage, tracking, ws, parent_run_id, optimized) -> RegisteredModel
    headline: Callable[[Any], dict[str, float]]  # the pipeline run's metrics
    comparison_rows: Callable[[Any], list[dict]]  # model vs baselines on the test split, for summaries
    card_sections: Callable[..., list[str]]  # (data, report, verdict): the card's data and numbers
    card_numbers: Callable[..., tuple[str, str]]  # (registered, report, verdict, tracking): the version's description
    served_numbers: Callable[[dict, Any], str]  # (tags, report): what serves beside PyTorch's score
    card_figure: Callable[..., str]  # (registered, tracking): a figure under the card, or ""
    # people: one example a person can run
    sample_text: Callable[[Any], str | None]  # (data): a text of the user's own test split, or None
    try_it: Callable[[str, str, str | None], str]  # (workspace, model@alias, sample): a command to try it
    # production: drift and closing the loop
    detect_drift: Stage  # (cfg, champion, window, out_dir, about, ws) -> DriftReport
    retrain_data: Stage  # (champion, new_data, ws, validation, test, seed) -> RetrainData
    retrain_settings: Callable[..., dict]  # (raw config, base config, champion, data, repretrain) -> raw config
    tune: Stage | None = None  # the hyperparameter search, where the kind has one
    compress: Stage | None = None  # distillation/pruning between fine-tuning and evaluation, where the kind has it
    from_scratch: bool = True  # whether the pretrain stage can feed it (tokenizer + pretraining on its corpus)
