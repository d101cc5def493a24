"""Stage 7, gate: may the new version (the challenger) replace the champion?

Both models run side by side, in this task, on one frozen evaluation set: the champion's test
split plus the newest test split, deduplicated by text (the newest label wins). A fixed set
seen by both is the only fair comparison; each model's own test score is not.

Rules (all must pass): the evaluate stage passed; on the frozen set the challenger reaches
`min_value` and beats the TF-IDF + logistic regression baseline by `baseline_margin` (the same
rules as the evaluate verdict, `tasks/quality.py`); it beats the champion by `margin`
(`compare: beat`) or is at most `margin` worse (`compare: not_worse`); it is not worse than the
champion on the newest test rows alone (after drift: the labeled window's held-out rows); and,
when the optimization stage ran, its parity check passed. The verdict and every rule's value and
reason become tags on the model version and on its MLflow run, and a Prefect markdown artifact.

Where the baseline beats the challenger, it is registered as a version of its own (tagged
`zero2one.kind=baseline`, with its own verdict on the same rows), never promoted automatically:
`zero2one promote` ships it in one command. The gate moves no alias: `tasks/promotion.py` does.

Generators (`task: generation`) get the same rules on chrF or exact match, against the retrieval baseline:
`tasks/gate_generation.py`, reached through this one `gate()` entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import datasets
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks import reporting
from tasks.baseline import load_baseline
from tasks.data import PreparedData
from tasks.errors import PipelineInputError
from tasks.evaluate import EvalReport, Scores, score
from tasks.evaluate_generation import EvaluateGenerationConfig, GenerationReport, GenerationScores
from tasks.fingerprint import hash_json
from tasks.gate_rules import champion_rule, evaluation_rule, newest_rule, parity_rule
from tasks.instruction_data import PreparedInstructions
from tasks.orchestration import RetryPolicy
from tasks.quality import QualityBar, RuleResult, baseline_rule, min_rule
from tasks.register import RegisteredModel, load_predictor, register_baseline
from tasks.registry_names import (
    CHAMPION,
    GATE_BASELINE_OFF,
    GATE_BASELINE_VERSION,
    GATE_CHALLENGER,
    GATE_CHAMPION_VERSION,
    GATE_FAILED_RULES,
    GATE_REASONS,
    GATE_RUN,
    GATE_VERDICT,
    LINEAGE_DATA_URI,
    failed_reasons,
    read_tag,
)
from tasks.storage import publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import Workspace, exists, join

VERDICT_TAG = GATE_VERDICT
__all__ = ["CHAMPION", "VERDICT_TAG", "GateConfig", "GateVerdict", "RuleResult", "failed_reasons", "gate"]


class GateConfig(BaseModel):
    """When a challenger may replace the champion. Defaults: a model that beats TF-IDF and is not worse."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["macro_f1", "accuracy"] = Field("macro_f1", description="The number the rules compare.")
    generation_metric: Literal["chrf", "exact_match"] = Field(
        "chrf",
        description="task=generation: the number the rules compare; min_value and the margins are then fractions "
        "of its range (0.01 = one chrF point), and the baseline is retrieval instead of TF-IDF.",
    )
    min_value: float = Field(0.0, ge=0, le=1, description="The challenger must reach this on the frozen set.")
    baseline_rule: bool = Field(
        True, description="Refuse a challenger that does not beat the TF-IDF baseline on the frozen set."
    )
    baseline_margin: float = Field(0.0, ge=0, le=1, description="How much the challenger must beat the baseline by.")
    baseline_rule_off_reason: str | None = Field(
        None, description="Required with baseline_rule=false: why; recorded in the verdict and the tags."
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
    batch_size: int = Field(64, gt=0)
    retry: RetryPolicy = RetryPolicy(retries=1)

    @model_validator(mode="after")
    def _quality_is_valid(self) -> GateConfig:
        self.quality()  # baseline_rule=false needs a reason
        return self

    def quality(self) -> QualityBar:
        """The absolute rules, as the evaluate stage applies them too."""
        return QualityBar(**self.model_dump(include=set(QualityBar.model_fields)))


class GateVerdict(BaseModel):
    """The gate's decision and everything it was based on."""

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
    def headline(self) -> str:
        """One line for people: "passed: macro-F1 0.8123 ..." or "refused: <the first failed rule's reason>"."""
        if self.passed:
            label = {"macro_f1": "macro-F1", "chrf": "chrF", "exact_match": "exact match"}.get(self.metric, self.metric)
            return f"passed: {label} {getattr(self.challenger, self.metric):.4f} on {self.eval_size} frozen texts"
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
        off = [r.reason for r in self.rules if r.name == "baseline" and r.value == "off"]
        if off:
            tags[GATE_BASELINE_OFF] = off[0]
        return tags


class _Judged(BaseModel):
    """Predictions on the frozen set (label indices, -1 for a label the data lacks) and their scores."""

    predictions: dict[str, list[int]]
    scores: dict[str, Scores]
    newest: dict[str, Scores]
    newest_rows: int


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
) -> GateVerdict:
    """Run challenger, champion and TF-IDF baseline on the frozen set, apply the rules, and record the verdict.

    A generator (its evaluation is a `GenerationReport`) is judged by `tasks/gate_generation.py`, which generates
    as `generation` (the evaluate_generation settings) says.
    """
    if isinstance(report, GenerationReport):
        from tasks.gate_generation import gate_generation  # it builds on this module

        return gate_generation(cfg, data, registered, report, tracking, ws, parent_run_id, generation)
    tracking.activate()
    client = tracking.client()
    champion = champion_version(client, registered.name)
    if champion is not None and str(champion.version) == registered.version:
        champion = None  # a re-run of an already promoted version: nothing else to compare with
    eval_set, sources = frozen_eval_set(data, champion)
    judged, labels_differ = _judge(cfg, client, tracking, registered, champion, report, eval_set, data.labels)
    rules = _rules(cfg, judged, report, champion, labels_differ, optimization_passed)
    fingerprint = hash_json(eval_set[["text", "label"]].values.tolist())
    verdict = GateVerdict(
        model=registered.name,
        version=registered.version,
        champion_version=str(champion.version) if champion else None,
        passed=all(r.passed for r in rules),
        rules=rules,
        metric=cfg.metric,
        challenger=judged.scores["challenger"],
        champion=judged.scores.get("champion"),
        baseline=judged.scores.get("baseline"),
        eval_size=len(eval_set),
        eval_sources=sources,
        eval_fingerprint=fingerprint,
        eval_uri=_freeze(eval_set, ws.uri("gate", fingerprint)),
        mlflow_run_id="",
    )
    if _baseline_wins(cfg, rules, report):
        verdict.baseline_version = _register_baseline(
            cfg, data, report, verdict, judged, champion, labels_differ, tracking
        )
    with stage_run(tracking, "gate", parent_run_id, {"zero2one.model_version": registered.version}) as run:
        verdict.mlflow_run_id = run.info.run_id
        mlflow.log_metrics({f"{who}_{cfg.metric}": getattr(s, cfg.metric) for who, s in judged.scores.items()})
        mlflow.set_tags(verdict.tags())
        mlflow.log_dict(verdict.model_dump(mode="json"), "gate/verdict.json")
    # On the version and on the run that logged it: whoever looks at the model sees why.
    _tag_version(client, registered, verdict.tags())
    client.log_metric(registered.run_id, f"gate_{cfg.metric}", getattr(verdict.challenger, cfg.metric))
    _report(verdict, report)
    return verdict


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version `champion` points at; None only when the model or the alias does not exist.

    Any other registry error (unreachable server, broken store) raises, so the task fails and is
    retried: treating an outage as "no champion" would let a worse model skip the champion rule.
    """
    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get(CHAMPION)
    return client.get_model_version(name, version) if version is not None else None


def frozen_eval_set(data: PreparedData, champion: ModelVersion | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The champion's test split plus the newest one, deduplicated by text: rows both models are judged on.

    Column `newest` marks the rows that are not in the champion's test split (all rows without a champion).
    """
    newest = _test_frame(data.splits_uri).assign(newest=True)
    if champion is None:
        return newest, {"newest_test": len(newest)}
    data_uri = read_tag(champion.tags, LINEAGE_DATA_URI)
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"champion v{champion.version} has no test data to compare on (tag {LINEAGE_DATA_URI}={data_uri!r} "
            "does not point at prepared data). Restore that folder, or promote by hand: "
            "zero2one promote --force --reason ..."
        )
    old = _test_frame(join(data_uri, "splits"))
    newest["newest"] = ~newest["text"].isin(set(old["text"]))
    both = pd.concat([old.assign(newest=False), newest], ignore_index=True).drop_duplicates("text", keep="last")
    both = both[both["label"].isin(data.labels)].reset_index(drop=True)
    sources = {
        "champion_test": len(old),
        "newest_test": len(newest),
        "new_since_champion": int(both["newest"].sum()),
        "frozen": len(both),
    }
    return both, sources


def _test_frame(splits_uri: str) -> pd.DataFrame:
    test = datasets.load_from_disk(splits_uri)["test"]
    names = test.features["label"].names
    return pd.DataFrame({"text": list(test["text"]), "label": [names[i] for i in test["label"]]})


def _freeze(eval_set: pd.DataFrame, uri: str) -> str:
    """Keep the exact rows (content-addressed) so the comparison can be re-run later."""
    if not exists(join(uri, "eval.parquet")):
        with tempfile.TemporaryDirectory() as tmp:
            eval_set.to_parquet(Path(tmp, "eval.parquet"), index=False)
            publish_dir(Path(tmp), uri)
    return uri


def _judge(
    cfg: GateConfig,
    client: MlflowClient,
    tracking: Tracking,
    registered: RegisteredModel,
    champion: ModelVersion | None,
    report: EvalReport,
    eval_set: pd.DataFrame,
    labels: list[str],
) -> tuple[_Judged, str | None]:
    """Every model on the frozen set and on its newest rows alone; and why the champion's labels differ, if so."""
    predictors = {"challenger": load_predictor(client, registered.name, registered.version, tracking)}
    if champion is not None:
        predictors["champion"] = load_predictor(client, registered.name, str(champion.version), tracking)
    if report.baseline is not None:  # the very model the evaluate stage scored (and serving would serve)
        predictors["baseline"] = load_baseline(report.baseline)
    labels_differ = None
    if champion is not None and sorted(predictors["champion"].labels) != sorted(labels):
        labels_differ = (
            f"champion v{champion.version} predicts {predictors['champion'].labels}, the challenger {labels}"
        )
    texts = eval_set["text"].tolist()
    y_true = [labels.index(t) for t in eval_set["label"]]
    # A predicted label the data lacks counts as wrong (-1 matches no class).
    predictions = {
        who: [labels.index(p) if p in labels else -1 for p in predictor.predict(texts, batch_size=cfg.batch_size)]
        for who, predictor in predictors.items()
    }
    new = eval_set["newest"].tolist()
    newest_true = [y for y, keep in zip(y_true, new, strict=True) if keep]
    judged = _Judged(
        predictions=predictions,
        scores={who: score(y_true, p, labels) for who, p in predictions.items()},
        newest={
            who: score(newest_true, [y for y, keep in zip(p, new, strict=True) if keep], labels)
            for who, p in predictions.items()
        }
        if newest_true
        else {},
        newest_rows=len(newest_true),
    )
    return judged, labels_differ


def _rules(
    cfg: GateConfig,
    judged: _Judged,
    report: EvalReport,
    champion: ModelVersion | None,
    labels_differ: str | None,
    optimization_passed: bool | None,
    who: str = "challenger",
) -> list[RuleResult]:
    """The rules for `who` (the challenger, or the baseline as a candidate of its own)."""
    metric, bar = cfg.metric, cfg.quality()
    value = getattr(judged.scores[who], metric)
    version = str(champion.version) if champion else None
    old = getattr(judged.scores["champion"], metric) if "champion" in judged.scores else None
    newest = [getattr(judged.newest[w], metric) if w in judged.newest else None for w in (who, "champion")]
    rules = [evaluation_rule(report)] if who == "challenger" else []
    rules.append(min_rule(bar, value))
    if who == "challenger" and "baseline" in judged.scores:
        rules.append(baseline_rule(bar, value, getattr(judged.scores["baseline"], metric)))
    elif who == "challenger":
        rules.append(RuleResult(name="baseline", passed=True, value="not run", reason="no TF-IDF baseline was fitted"))
    rules.append(champion_rule(cfg, value, old, version, labels_differ))
    rules.append(newest_rule(cfg, *newest, judged.newest_rows, version))
    if who == "challenger":
        rules.append(parity_rule(optimization_passed))
    return rules


def _baseline_wins(cfg: GateConfig, rules: list[RuleResult], report: EvalReport) -> bool:
    failed = any(r.name == "baseline" and not r.passed for r in rules)
    return cfg.register_baseline and report.baseline is not None and failed


def _register_baseline(
    cfg: GateConfig,
    data: PreparedData,
    report: EvalReport,
    challenger: GateVerdict,
    judged: _Judged,
    champion: ModelVersion | None,
    labels_differ: str | None,
    tracking: Tracking,
) -> str:
    """Register the baseline that beat the challenger, with its own verdict on the same rows (never promoted here)."""
    registered = register_baseline(challenger.model, data, report, tracking)
    rules = _rules(cfg, judged, report, champion, labels_differ, None, who="baseline")
    verdict = challenger.model_copy(
        update={
            "version": registered.version,
            "passed": all(r.passed for r in rules),
            "rules": rules,
            "challenger": judged.scores["baseline"],
            "baseline": None,
            "mlflow_run_id": registered.run_id,
        }
    )
    _tag_version(tracking.client(), registered, verdict.tags() | {GATE_CHALLENGER: challenger.version})
    title = "may be promoted" if verdict.passed else "did not pass either"
    reporting.logger().info(
        "the TF-IDF baseline beat v%s and is registered as %s v%s; it %s: %s",
        challenger.version,
        registered.name,
        registered.version,
        title,
        "; ".join(verdict.reasons) or f"zero2one promote --model {registered.name} --version {registered.version}",
    )
    return registered.version


def _tag_version(client: MlflowClient, registered: RegisteredModel, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)


def comparison_rows(verdict: GateVerdict, report: EvalReport | None = None) -> list[dict]:
    """Challenger, champion and TF-IDF baseline on the frozen set; the majority class from the evaluate stage."""
    rows = [{"model": f"challenger v{verdict.version}", "set": "frozen", **_nums(verdict.challenger)}]
    if verdict.champion:
        rows.append({"model": f"champion v{verdict.champion_version}", "set": "frozen", **_nums(verdict.champion)})
    if verdict.baseline:
        registered = f" (registered as v{verdict.baseline_version})" if verdict.baseline_version else ""
        rows.append({"model": f"tf-idf + logreg{registered}", "set": "frozen", **_nums(verdict.baseline)})
    if report:
        rows.append({"model": "majority class", "set": "newest test", **_nums(report.majority)})
    return rows


def _nums(s: Scores) -> dict:
    return {"accuracy": round(s.accuracy, 4), "macro_f1": round(s.macro_f1, 4)}


def rule_rows(verdict: GateVerdict) -> list[dict]:
    return [
        {"rule": r.name, "result": "pass" if r.passed else "FAIL", "value": r.value, "why": r.reason}
        for r in verdict.rules
    ]


def _report(verdict: GateVerdict, report: EvalReport) -> None:
    title = "passed" if verdict.passed else "failed"
    reporting.markdown(
        "gate",
        f"# Gate {title}: {verdict.model} v{verdict.version}\n\n"
        f"{reporting.md_table(comparison_rows(verdict, report))}\n\n{reporting.md_table(rule_rows(verdict))}\n\n"
        f"Frozen evaluation set: {verdict.eval_size} texts {verdict.eval_sources}, `{verdict.eval_uri}`\n"
        + _baseline_note(verdict),
        description=f"Gate verdict for v{verdict.version}",
    )
    why = verdict.reasons or "all rules passed"
    reporting.logger().info("gate %s for %s v%s: %s", title, verdict.model, verdict.version, why)


def _baseline_note(verdict: GateVerdict) -> str:
    if not verdict.baseline_version:
        return ""
    return (
        f"\nThe TF-IDF baseline beat v{verdict.version} and is registered as v{verdict.baseline_version} "
        f"(`zero2one.kind=baseline`, with its own verdict). Ship it instead: "
        f"`zero2one promote --model {verdict.model} --version {verdict.baseline_version}`\n"
    )
