"""The contract between stages: every stage's result type, in one light module (pydantic only).

A stage imports the results of the stages before it from here, never the stage itself, so the import graph of
`tasks/` stays a few floors deep, and a service or a test that only reads a result loads no torch, MLflow or
transformers. Sections by track: data (prepared splits, tokenizers), classification, generation, and the
registry (versions, the gate's verdict, promotions). Registry tag, alias and event names live in
`core/registry_names.py`; configs that more than one stage reads in `tasks/stage_configs.py`.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from core.registry_names import (
    GATE_BASELINE_OFF,
    GATE_BASELINE_VERSION,
    GATE_CHAMPION_VERSION,
    GATE_EVAL_ROWS,
    GATE_FAILED_RULES,
    GATE_NOT_JUDGED,
    GATE_REASONS,
    GATE_RUN,
    GATE_VERDICT,
)

SPLITS = ("train", "validation", "test")
Messages = list[dict[str, str]]  # a chat: {role, content} dicts, the last one the assistant's answer
Variant = Literal["int8", "fp32", "pytorch"]
METRIC_LABELS = {"macro_f1": "macro-F1", "accuracy": "accuracy", "chrf": "chrF", "exact_match": "exact match"}
C = TypeVar("C", bound=BaseModel)


# ---------------------------------------------------------------- data: prepared splits and tokenizers


class ArrowSplits(BaseModel):
    """A prepared data set on storage: splits and corpus under one fingerprinted folder (both tracks)."""

    uri: str
    fingerprint: str
    sizes: dict[str, int]
    dropped: dict[str, int]
    source: str

    @property
    def splits_uri(self) -> str:
        return self.uri.rstrip("/") + "/splits"

    @property
    def corpus_uri(self) -> str:
        return self.uri.rstrip("/") + "/corpus"


class PreparedData(ArrowSplits):
    """What the classification stages need: where the Arrow data is, and what is in it (`tasks/data/prepare.py`)."""

    labels: list[str]
    corpus_size: int


class PreparedInstructions(ArrowSplits):
    """Instruction data (`tasks/kinds/generation/data.py`); the corpus has its own train/validation sizes."""

    corpus_sizes: dict[str, int]


class TokenizerArtifact(BaseModel):
    """A saved tokenizer folder (`tasks/training/tokenizer.py`, `tasks/kinds/generation/tokenizer.py`)."""

    uri: str
    vocab_size: int
    trained: bool


# ---------------------------------------------------------------- classification


class RuleResult(BaseModel):
    """One quality or gate rule: passed or not, the value it judged, and why (`tasks/judging/quality.py`,
    `gate_rules.py`).

    `state` says whether the rule judged anything: "not judged" (too few rows to compare) and "not set" (a minimum
    of 0, which every model reaches) pass, but screens show the state instead of "pass".
    """

    name: str
    passed: bool
    value: str
    reason: str
    state: Literal["judged", "not judged", "not set"] = "judged"


class PretrainedModel(BaseModel):
    """A model a pretraining stage saved, either track: where it is, how far it trained, how well."""

    uri: str
    global_step: int
    resumed_from_step: int
    eval_loss: float
    perplexity: float
    parameters: int
    mlflow_run_id: str
    train_seconds: float = 0.0  # the training loop alone (this attempt), for throughput comparisons


class TunedModel(BaseModel):
    """A model a tuning stage saved, either track: where it is, what it started from, how far it trained."""

    uri: str
    base_model: str
    method: str
    global_step: int
    resumed_from_step: int
    mlflow_run_id: str
    pretrain_run_id: str | None = None


class EncoderArtifact(PretrainedModel):
    """The pretrained masked-language encoder (`tasks/training/pretrain.py`)."""


class FinetunedModel(TunedModel):
    """The fine-tuned classifier checkpoint (`tasks/kinds/classification/finetune.py`)."""

    recipe: str = Field(
        "unknown", description="The recipe that filled the unset settings (tasks/kinds/classification/recipes.py)."
    )
    labels: list[str]
    best_metric: float
    metric: str


class BaselineModel(BaseModel):
    """Where the exported baseline is (`baseline.json` + `baseline.onnx`) and how it was tuned
    (`tasks/kinds/classification/baseline.py`)."""

    uri: str
    c: float
    validation_macro_f1: float


class Scores(BaseModel):
    """A classifier's numbers on one set of rows (`tasks/judging/scoring.py`)."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]] = {}


class EvalReport(BaseModel):
    """The evaluate stage's verdict on the test split, against the majority class and TF-IDF
    (`tasks/kinds/classification/evaluate.py`)."""

    uri: str
    model: Scores
    majority: Scores
    tfidf_logreg: Scores
    passed: bool
    reasons: list[str]
    rules: list[RuleResult] = []
    baseline: BaselineModel | None = None
    test_size: int
    mlflow_run_id: str
    confusion: list[list[int]] = Field([], description="Test split counts: rows true labels, columns predicted.")
    truncated: int | None = Field(None, description="Test texts longer than the model's window, cut to it.")
    truncation: str | None = Field(None, description="How they were cut (finetune.truncation, models/truncation.py).")


class Parity(BaseModel):
    """One ONNX variant against PyTorch on the test split (`tasks/optimize/parity.py`)."""

    agreement: float
    accuracy: float
    macro_f1: float
    accuracy_drop: float
    macro_f1_drop: float
    max_abs_logit_diff: float
    passed: bool
    reason: str | None = None


class OptimizedModel(BaseModel):
    """What the optimize stage produced, which graph serves, and why (`tasks/optimize/`).

    `passed` (what the promotion gate reads): an ONNX graph that matches PyTorch serves. A rejected
    int8 graph does not fail it - the fp32 graph serves instead - but it is named in `reasons`.
    """

    uri: str
    onnx_file: str | None
    variant: Variant
    passed: bool
    verdict: str
    reasons: list[str]
    parity: dict[str, Parity]
    reference: dict[str, float]
    fused_ops: dict[str, int]
    latency: list[dict]
    sizes_mb: dict[str, float]
    eval_size: int
    mlflow_run_id: str

    @property
    def onnx_uri(self) -> str | None:
        """The chosen graph (None: PyTorch serves)."""
        from core.workspace import join  # fsspec: kept out of the contract's import

        return join(self.uri, self.onnx_file) if self.onnx_file else None


class TrialResult(BaseModel):
    """One finished search trial: its validation score and the per-epoch curve the pruner reads
    (`tasks/kinds/classification/tune.py`)."""

    number: int
    value: float
    curve: list[tuple[float, float]]
    global_step: int
    mlflow_run_id: str
    seconds: float


def with_settings(cfg: C, params: dict) -> C:
    """A fine-tune config with a trial's epochs, learning rate, batch size and warmup ratio (replacing warmup_steps)."""
    update = {k: params[k] for k in ("learning_rate", "batch_size", "warmup_ratio")} | {"warmup_steps": None}
    return cfg.model_copy(update={"epochs": params["epochs"], "optim": cfg.optim.model_copy(update=update)})


class TuneResult(BaseModel):
    """What the search found, in the fine-tune stage's own terms, and where the study is
    (`tasks/kinds/classification/tune.py`)."""

    best_params: dict[str, float | int]
    best_value: float
    metric: str
    n_trials: int
    n_complete: int
    study_name: str
    storage_uri: str
    mlflow_run_id: str

    def apply(self, cfg: C) -> C:
        """`cfg` (a FinetuneConfig) with the best trial's epochs, learning rate, batch size and warmup ratio."""
        return with_settings(cfg, self.best_params)


# ---------------------------------------------------------------- generation


class DecoderArtifact(PretrainedModel):
    """The pretrained causal decoder (`tasks/kinds/generation/pretrain.py`)."""

    tokens_per_second: float  # training tokens per second of this attempt's training loop


class InstructionTunedModel(TunedModel):
    """The instruction-tuned generator checkpoint (`tasks/kinds/generation/sft.py`)."""

    eval_loss: float  # validation loss on answer tokens
    perplexity: float
    too_long: int  # chats longer than max_length (truncated or dropped, by policy)
    samples_per_second: float


class GenerationScores(BaseModel):
    """A generator's numbers on one set of prompts (`tasks/judging/scoring.py`)."""

    exact_match: float  # share of answers equal to the reference (whitespace-trimmed)
    chrf: float  # corpus chrF, 0-100
    perplexity: float | None = None  # of the reference answers' tokens; None for retrieval
    rouge_l: float | None = None  # mean ROUGE-L F1, 0-100 (rouge-score, stemmed); None where not computed


class GenerationReport(BaseModel):
    """The evaluate_generation stage's verdict against the pre-SFT model and retrieval."""

    uri: str
    model: GenerationScores
    before_sft: GenerationScores | None
    retrieval: GenerationScores
    passed: bool
    reasons: list[str]
    test_size: int
    samples: list[dict[str, str]]
    mlflow_run_id: str


# ---------------------------------------------------------------- registry: versions, the gate, promotions


class Lineage(BaseModel):
    """Where a model came from, beyond what the stage results carry."""

    config_hash: str
    code_version: str
    # The pipeline config as it ran (JSON), recorded with the version: a retrain starts from these settings.
    config: dict | None = None


class RegisteredModel(BaseModel):
    """A model version the register stage added (`tasks/registry/register.py`) or the gate's baseline."""

    name: str
    version: str
    aliases: list[str]
    model_uri: str
    run_id: str
    tags: dict[str, str]


class GateVerdict(BaseModel):
    """The gate's decision and everything it was based on (`tasks/judging/gate.py`,
    `tasks/kinds/generation/gate.py`)."""

    model: str
    version: str
    champion_version: str | None
    passed: bool
    rules: list[RuleResult]
    metric: str
    challenger: Scores | GenerationScores
    champion: Scores | GenerationScores | None
    baseline: Scores | GenerationScores | None = None
    baseline_version: str | None = None
    eval_size: int
    eval_sources: dict[str, int]
    eval_fingerprint: str
    eval_uri: str
    mlflow_run_id: str

    @property
    def reasons(self) -> list[str]:
        return [f"{r.name}: {r.reason}" for r in self.rules if not r.passed]

    @property
    def eval_rows_note(self) -> str:
        """How many rows the models were judged on, and how many test rows were left out because one trained on them."""
        excluded = self.eval_sources.get("excluded_trained_on", 0)
        return (
            f"{self.eval_size} frozen rows; {excluded} test texts left out because the champion or the challenger "
            "trained on them (train or validation split)"
        )

    @property
    def headline(self) -> str:
        """One line for people: "passed: macro-F1 0.8123 ..." or "refused: <the first failed rule's reason>"."""
        if self.passed:
            label = METRIC_LABELS.get(self.metric, self.metric)
            head = f"passed: {label} {getattr(self.challenger, self.metric):.4f} on {self.eval_size} frozen texts"
            unjudged = [f"{r.name} not judged: {r.value}" for r in self.rules if r.state == "not judged"]
            return head + (f" ({'; '.join(unjudged)})" if unjudged else "")
        failed = [r for r in self.rules if not r.passed and r.name != "evaluation"] or [
            r for r in self.rules if not r.passed
        ]
        return "refused: " + failed[0].reason

    def tags(self) -> dict[str, str]:
        """Few and machine-readable: every rule's value and reason is in verdict.json and the model card."""
        failed = [r.name for r in self.rules if not r.passed]
        tags = {
            GATE_VERDICT: "passed" if self.passed else "failed",
            GATE_FAILED_RULES: ",".join(failed) or "none",
            GATE_CHAMPION_VERSION: self.champion_version or "none",
            GATE_RUN: self.mlflow_run_id,
        }
        if failed:
            tags[GATE_REASONS] = "\n".join(self.reasons)
        if self.baseline_version:
            tags[GATE_BASELINE_VERSION] = self.baseline_version
        unjudged = [f"{r.name}: {r.state}: {r.reason}" for r in self.rules if r.state != "judged"]
        if unjudged:
            tags[GATE_NOT_JUDGED] = "\n".join(unjudged)
        tags[GATE_EVAL_ROWS] = self.eval_rows_note
        off = [r.reason for r in self.rules if r.name == "baseline" and r.value == "off"]
        if off:
            tags[GATE_BASELINE_OFF] = off[0]
        return tags


class Promotion(BaseModel):
    """One move of the `champion` alias (or, with `changed=False`, the finding that none was needed)."""

    model: str
    version: str
    previous_version: str | None
    action: Literal["promote", "rollback"]
    forced: bool = False
    reason: str
    seq: int | None
    at: str
    flow_run_id: str | None = None
    changed: bool = True
    event_id: str | None = None

    def record(self) -> str:
        return json.dumps(self.model_dump(exclude={"model", "changed", "event_id"}), sort_keys=True)
