"""A classifier's stage results: pretrained and fine-tuned models, scores, the optimize stage, the search."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.workspace import join
from tasks.results.common import C, PretrainedModel, TunedModel, Variant
from tasks.results.scores import RuleResult, Scores


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
    compression: str | None = None  # when this is a compressed student: teacher, what was removed, what it kept


class Compression(BaseModel):
    """What the compress stage made of the fine-tuned teacher, and whether the student may replace it
    (`tasks/kinds/classification/compress.py`): the student keeps `quality_floor` of the teacher's test macro-F1."""

    uri: str | None  # the student folder (None: it was refused, the teacher goes on)
    teacher_uri: str
    method: str
    teacher_parameters: int
    student_parameters: int
    teacher_layers: int
    student_layers: int
    heads_removed: int
    neurons_removed: int
    tokens_removed: int
    teacher_size_mb: float
    student_size_mb: float
    teacher_metric: float
    student_metric: float
    kept_ratio: float
    passed: bool
    reason: str
    seconds: float
    mlflow_run_id: str

    def summary(self) -> str:
        """One line for the version's tag and the card."""
        return (
            f"{self.method}: {self.teacher_layers} -> {self.student_layers} layers, "
            f"{self.teacher_parameters / 1e6:.1f}M -> {self.student_parameters / 1e6:.1f}M parameters "
            f"({self.heads_removed} heads, {self.neurons_removed} FFN neurons, {self.tokens_removed} tokens removed), "
            f"{self.teacher_size_mb:.0f} -> {self.student_size_mb:.0f} MB; test macro-F1 {self.teacher_metric:.4f} -> "
            f"{self.student_metric:.4f} ({self.kept_ratio:.1%} kept); teacher {self.teacher_uri}"
        )

    def apply(self, teacher: FinetunedModel) -> FinetunedModel:
        """The model the later stages take: the student when it passed the floor, else the teacher as it was."""
        if not self.passed or self.uri is None:
            return teacher
        update = {"uri": self.uri, "method": f"{teacher.method}+{self.method}", "compression": self.summary()}
        return teacher.model_copy(update=update | {"mlflow_run_id": self.mlflow_run_id})


class BaselineModel(BaseModel):
    """Where the exported baseline is (`baseline.json` + `baseline.onnx`) and how it was tuned
    (`tasks/kinds/classification/baseline.py`)."""

    uri: str
    c: float
    validation_macro_f1: float


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
