"""Configs that more than one stage reads, kept out of the stages so that no stage imports another for its config.

- `SplitConfig`: how `tasks/data/prepare.py` and `tasks/kinds/generation/data.py` carve the splits a source lacks.
- `EvaluateGenerationConfig`: how `tasks/kinds/generation/evaluate.py` scores a generator; the gate generates the
same way.
- `QualityBar`: the absolute rules the evaluate stage and the gate both apply (`tasks/judging/quality.py`).
- `GateConfig`: read by `tasks/judging/gate.py`, `tasks/kinds/generation/gate.py` and the rules in
`tasks/judging/gate_rules.py`.

Every other stage config stays with its stage. Pydantic only (plus the light `RetryPolicy`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.registry_names import CHALLENGER, DEFAULT_MODEL_NAMES
from core.retry import RetryPolicy

Metric = Literal["macro_f1", "accuracy"]
METRIC_NAMES = {"macro_f1": "macro-F1", "accuracy": "accuracy"}


class QualityBar(BaseModel):
    """The absolute rules: a minimum, and beating the TF-IDF + logistic regression baseline on the same rows."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric = Field("macro_f1", description="The number the rules compare.")
    min_value: float = Field(0.0, ge=0, le=1, description="The model must reach this on the rows judged.")
    baseline_rule: bool = Field(
        True, description="Refuse a model that does not beat the TF-IDF baseline by `baseline_margin`."
    )
    baseline_margin: float = Field(0.0, ge=0, le=1, description="How much the model must beat the baseline by.")
    baseline_rule_off_reason: str | None = Field(
        None, description="Why the baseline rule is off (required when baseline_rule=false; recorded in the verdict)."
    )

    @model_validator(mode="after")
    def _off_needs_a_reason(self) -> QualityBar:
        if not self.baseline_rule and not (self.baseline_rule_off_reason or "").strip():
            raise ValueError(
                "gate.baseline_rule=false needs gate.baseline_rule_off_reason: say why a model that may be worse "
                "than TF-IDF + logistic regression can ship (it is recorded with the verdict)"
            )
        return self


class SplitConfig(BaseModel):
    """How to carve the splits a source lacks (stratified by label), as shares of all its labeled rows."""

    model_config = ConfigDict(extra="forbid")

    validation: float = Field(0.1, gt=0, lt=0.5, description="Share of the labeled rows for validation.")
    test: float = Field(0.15, gt=0, lt=0.5, description="Share of the labeled rows for test.")
    seed: int = Field(42, description="Seed of the split and of max_rows sampling.")


class EvaluateGenerationConfig(BaseModel):
    """How the generator is scored, and what "good enough to become champion" means."""

    model_config = ConfigDict(extra="forbid")

    max_prompts: int | None = Field(200, gt=0, description="Held-out prompts to generate for (null: all of test).")
    max_new_tokens: int = Field(48, gt=0, description="Longest generated answer in tokens.")
    batch_size: int = Field(32, gt=0)
    seed: int = Field(0, description="Generation seed (greedy decoding ignores it; recorded for sampling).")
    baseline_before_sft: bool = Field(True, description="Also score the model before instruction tuning.")
    samples: int = Field(10, ge=0, description="Rows in the samples table.")
    min_chrf: float = Field(0.0, ge=0, le=100, description="The model must reach this chrF on the test prompts.")
    retry: RetryPolicy = RetryPolicy(retries=1)


class GateConfig(QualityBar):
    """When a challenger may replace the champion. Defaults: a model that beats TF-IDF and is not worse.

    The absolute rules (`metric`, `min_value`, the baseline rule) are the evaluate stage's `QualityBar`, judged here
    on the frozen set; the fields below add the comparison with the champion.
    """

    generation_metric: Literal["chrf", "exact_match"] = Field(
        "chrf",
        description="task=generation: the number the rules compare; min_value and the margins are then fractions "
        "of its range (0.01 = one chrF point), and the baseline is retrieval instead of TF-IDF.",
    )
    compare: Literal["beat", "not_worse"] = Field(
        "not_worse",
        description="beat: challenger >= champion + margin; not_worse: challenger >= champion - margin.",
    )
    margin: float = Field(0.0, ge=0, le=1, description="Required gain (beat) or allowed loss (not_worse).")
    newest_rule: bool = Field(
        True, description="The challenger must not be worse than the champion on the newest test rows alone."
    )
    newest_margin: float = Field(0.0, ge=0, le=1, description="Allowed loss on the newest rows.")
    newest_min_rows: int = Field(20, ge=1, description="Fewer newest rows than this: too few to compare.")
    register_baseline: bool = Field(
        True, description="Register the TF-IDF baseline as a candidate version where it beats the challenger."
    )
    promote: bool = Field(True, description="Move `champion` to a version that passes; false: only record it.")
    baseline_as_champion: bool = Field(
        False,
        description="Unattended first runs: when no champion exists, the fine-tuned model is refused and the TF-IDF "
        "baseline's own version passed the other rules, that version becomes champion (the reason is recorded).",
    )
    approval: Literal["none", "required"] = Field(
        "none",
        description="required: a version that passed waits for a person (the Prefect form, or zero2one approve / "
        "reject) before it becomes champion; a deployment's flow run suspends meanwhile.",
    )
    approval_timeout: int = Field(
        7 * 24 * 3600, gt=0, description="Seconds to wait for an answer; then the version is rejected as timed out."
    )
    batch_size: int = Field(64, gt=0)
    retry: RetryPolicy = RetryPolicy(retries=1)

    def quality(self) -> QualityBar:
        """The absolute rules alone, as the evaluate stage applies them."""
        return QualityBar(**self.model_dump(include=set(QualityBar.model_fields)))


class RegisterConfig(BaseModel):
    """Which registered model to add a version to, and the alias new versions get."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        DEFAULT_MODEL_NAMES["classification"], min_length=1, description="Default: zero2one-generator for generation."
    )
    challenger_alias: str = CHALLENGER
    retry: RetryPolicy = RetryPolicy()
