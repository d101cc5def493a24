"""Registry results: lineage, registered versions, the gate's verdict with its rules, promotions."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel

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
from tasks.results.common import METRIC_LABELS
from tasks.results.scores import AnswerScores, EntityScores, GenerationScores, RuleResult, Scores


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
    challenger: Scores | GenerationScores | EntityScores | AnswerScores
    champion: Scores | GenerationScores | EntityScores | AnswerScores | None
    baseline: Scores | GenerationScores | EntityScores | AnswerScores | None = None
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


class Champion(BaseModel):
    """The registered version being monitored and where its lineage points."""

    name: str
    alias: str
    version: str
    run_id: str
    data_uri: str
    checkpoint_uri: str
    model_dir: str
    data_fingerprint: str
    labels: list[str]
    task: str = "classification"  # tag `zero2one.task`: a generator ("generation") has chats, not labels
    config_uri: str = ""  # tag `zero2one.lineage.config_uri`: its pipeline config; "" when registered before that
