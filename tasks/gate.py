"""Stage 7, gate: may the new version (the challenger) replace the champion?

Both models run side by side, in this task, on one frozen evaluation set: the champion's test
split plus the newest test split, deduplicated by text (the newest label wins). A fixed set
seen by both is the only fair comparison; each model's own test score is not.

Rules (all must pass): the evaluate stage passed, the challenger reaches `min_value` on the
frozen set, it beats the champion by `margin` (`compare: beat`) or is at most `margin` worse
(`compare: not_worse`), and, when the optimization stage ran, its parity check passed. The
verdict and every rule's value and reason become tags on the model version and on its MLflow
run, and a Prefect markdown artifact. The gate moves no alias: `tasks/promotion.py` does.
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
from pydantic import BaseModel, ConfigDict, Field

from models.classifier import TextClassifier
from tasks import reporting
from tasks.data import PreparedData
from tasks.errors import PipelineInputError
from tasks.evaluate import EvalReport, Scores, score
from tasks.fingerprint import hash_json
from tasks.orchestration import RetryPolicy
from tasks.register import RegisteredModel
from tasks.storage import materialize, publish_dir
from tasks.tracking import Tracking, stage_run
from tasks.workspace import Workspace, exists, join

CHAMPION = "champion"
VERDICT_TAG = "zero2one.gate.verdict"


class GateConfig(BaseModel):
    """When a challenger may replace the champion. Defaults: any model that evaluates fine and is not worse."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["macro_f1", "accuracy"] = Field("macro_f1", description="The number the rules compare.")
    min_value: float = Field(0.0, ge=0, le=1, description="The challenger must reach this on the frozen set.")
    compare: Literal["beat", "not_worse"] = Field(
        "not_worse",
        description="beat: challenger >= champion + margin; not_worse: challenger >= champion - margin.",
    )
    margin: float = Field(0.0, ge=0, le=1, description="Required gain (beat) or allowed loss (not_worse).")
    promote: bool = Field(True, description="Move `champion` to a version that passes; false: only record it.")
    batch_size: int = Field(64, gt=0)
    retry: RetryPolicy = RetryPolicy(retries=1)


class RuleResult(BaseModel):
    name: str
    passed: bool
    value: str
    reason: str


class GateVerdict(BaseModel):
    """The gate's decision and everything it was based on."""

    model: str
    version: str
    champion_version: str | None
    passed: bool
    rules: list[RuleResult]
    metric: str
    challenger: Scores
    champion: Scores | None
    eval_size: int
    eval_sources: dict[str, int]
    eval_fingerprint: str
    eval_uri: str
    mlflow_run_id: str

    @property
    def reasons(self) -> list[str]:
        return [f"{r.name}: {r.reason}" for r in self.rules if not r.passed]

    def tags(self) -> dict[str, str]:
        tags = {
            VERDICT_TAG: "passed" if self.passed else "failed",
            "zero2one.gate.champion_version": self.champion_version or "none",
            "zero2one.gate.eval_fingerprint": self.eval_fingerprint,
            "zero2one.gate.eval_size": str(self.eval_size),
            "zero2one.gate.run_id": self.mlflow_run_id,
        }
        for r in self.rules:
            tags[f"zero2one.gate.{r.name}"] = "passed" if r.passed else "failed"
            tags[f"zero2one.gate.{r.name}.value"] = r.value
            tags[f"zero2one.gate.{r.name}.reason"] = r.reason
        return tags


def gate(
    cfg: GateConfig,
    data: PreparedData,
    registered: RegisteredModel,
    report: EvalReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    optimization_passed: bool | None = None,
) -> GateVerdict:
    """Run the challenger and the champion on the frozen set, apply the rules, and record the verdict."""
    tracking.activate()
    client = tracking.client()
    champion = _champion(client, registered.name)
    if champion is not None and str(champion.version) == registered.version:
        champion = None  # a re-run of an already promoted version: nothing else to compare with
    eval_set, sources = frozen_eval_set(data, champion)

    challenger_clf = TextClassifier(_model_dir(client, registered.name, registered.version, tracking))
    challenger_scores = _score(challenger_clf, eval_set, data.labels, cfg.batch_size)
    champion_clf = champion_scores = None
    if champion is not None:
        champion_clf = TextClassifier(_model_dir(client, registered.name, champion.version, tracking))
        champion_scores = _score(champion_clf, eval_set, data.labels, cfg.batch_size)

    rules = [
        _evaluation_rule(report),
        _min_rule(cfg, challenger_scores),
        _champion_rule(cfg, challenger_scores, champion, champion_scores, champion_clf, data.labels),
        _parity_rule(optimization_passed),
    ]
    fingerprint = hash_json(eval_set[["text", "label"]].values.tolist())
    eval_uri = _freeze(eval_set, ws.uri("gate", fingerprint))

    with stage_run(tracking, "gate", parent_run_id, {"zero2one.model_version": registered.version}) as run:
        verdict = GateVerdict(
            model=registered.name,
            version=registered.version,
            champion_version=str(champion.version) if champion else None,
            passed=all(r.passed for r in rules),
            rules=rules,
            metric=cfg.metric,
            challenger=challenger_scores,
            champion=champion_scores,
            eval_size=len(eval_set),
            eval_sources=sources,
            eval_fingerprint=fingerprint,
            eval_uri=eval_uri,
            mlflow_run_id=run.info.run_id,
        )
        metrics = {f"challenger_{cfg.metric}": getattr(challenger_scores, cfg.metric)}
        if champion_scores:
            metrics[f"champion_{cfg.metric}"] = getattr(champion_scores, cfg.metric)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(verdict.tags())
        mlflow.log_dict(verdict.model_dump(mode="json"), "gate/verdict.json")
    # On the version and on the run that logged it: whoever looks at the model sees why.
    for key, value in verdict.tags().items():
        client.set_model_version_tag(registered.name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)
    client.log_metric(registered.run_id, f"gate_{cfg.metric}", getattr(challenger_scores, cfg.metric))
    _report(verdict, report)
    return verdict


def failed_reasons(tags: dict[str, str]) -> list[str]:
    """The reasons of the failed rules, read back from a model version's tags."""
    rules = [k for k, v in tags.items() if k.startswith("zero2one.gate.") and k.count(".") == 2 and v == "failed"]
    rules = [k for k in rules if k != VERDICT_TAG]
    return [f"{k.removeprefix('zero2one.gate.')}: {tags.get(k + '.reason', '?')}" for k in sorted(rules)]


def frozen_eval_set(data: PreparedData, champion: ModelVersion | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The champion's test split plus the newest one, deduplicated by text: rows both models are judged on."""
    newest = _test_frame(data.splits_uri)
    if champion is None:
        return newest, {"newest_test": len(newest)}
    data_uri = champion.tags.get("zero2one.data_uri")
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"champion v{champion.version} has no test data to compare on (tag zero2one.data_uri={data_uri!r} "
            "does not point at prepared data). Restore that folder, or promote by hand: "
            "zero2one promote --force --reason ..."
        )
    old = _test_frame(join(data_uri, "splits"))
    both = pd.concat([old, newest], ignore_index=True).drop_duplicates("text", keep="last")
    both = both[both["label"].isin(data.labels)].reset_index(drop=True)
    sources = {"champion_test": len(old), "newest_test": len(newest), "frozen": len(both)}
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


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _model_dir(client: MlflowClient, name: str, version: str, tracking: Tracking) -> Path:
    """The checkpoint the version was made from; if it is gone, the weights inside the registered artifact."""
    checkpoint = client.get_model_version(name, version).tags.get("zero2one.checkpoint_uri")
    if checkpoint and exists(join(checkpoint, "config.json")):
        return materialize(checkpoint)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", tracking_uri=tracking.uri, registry_uri=tracking.uri
    )
    return Path(local, "artifacts", "model")


def _score(clf: TextClassifier, eval_set: pd.DataFrame, labels: list[str], batch_size: int) -> Scores:
    """Predicted label names mapped onto the data's labels; a label the data lacks counts as wrong."""
    predicted = clf.predict(eval_set["text"].tolist(), batch_size=batch_size)
    y_pred = [labels.index(p) if p in labels else -1 for p in predicted]
    return score([labels.index(t) for t in eval_set["label"]], y_pred, labels)


def _evaluation_rule(report: EvalReport) -> RuleResult:
    reason = "; ".join(report.reasons) if report.reasons else "beats the majority class on its test split"
    value = "passed" if report.passed else "failed"
    return RuleResult(name="evaluation", passed=report.passed, value=value, reason=reason)


def _min_rule(cfg: GateConfig, challenger: Scores) -> RuleResult:
    value = getattr(challenger, cfg.metric)
    ok = value >= cfg.min_value
    return RuleResult(
        name=f"min_{cfg.metric}",
        passed=ok,
        value=f"{value:.4f}",
        reason=f"{cfg.metric} {value:.4f} {'>=' if ok else '<'} gate.min_value={cfg.min_value}",
    )


def _champion_rule(
    cfg: GateConfig,
    challenger: Scores,
    champion: ModelVersion | None,
    champion_scores: Scores | None,
    champion_clf: TextClassifier | None,
    labels: list[str],
) -> RuleResult:
    if champion is None or champion_scores is None or champion_clf is None:
        return RuleResult(name="champion", passed=True, value="none", reason="no champion to compare with")
    if sorted(champion_clf.labels) != sorted(labels):
        return RuleResult(
            name="champion",
            passed=False,
            value="labels differ",
            reason=f"champion v{champion.version} predicts {champion_clf.labels}, the challenger {labels}",
        )
    new, old = getattr(challenger, cfg.metric), getattr(champion_scores, cfg.metric)
    needed = old + cfg.margin if cfg.compare == "beat" else old - cfg.margin
    ok = new >= needed - 1e-12
    rule = f"gate.compare={cfg.compare}, gate.margin={cfg.margin}: needs >= {needed:.4f}"
    return RuleResult(
        name="champion",
        passed=ok,
        value=f"{new:.4f} vs {old:.4f}",
        reason=f"{cfg.metric} {new:.4f} vs champion v{champion.version} {old:.4f} ({new - old:+.4f}); {rule}",
    )


def _parity_rule(optimization_passed: bool | None) -> RuleResult:
    if optimization_passed is None:
        return RuleResult(name="parity", passed=True, value="not run", reason="the optimization stage did not run")
    return RuleResult(
        name="parity",
        passed=optimization_passed,
        value="passed" if optimization_passed else "failed",
        reason="optimized model matches the original" if optimization_passed else "optimized model differs",
    )


def comparison_rows(verdict: GateVerdict, report: EvalReport | None = None) -> list[dict]:
    """Challenger and champion on the frozen set; the baselines from the evaluate stage (newest test split)."""
    rows = [{"model": f"challenger v{verdict.version}", "set": "frozen", **_nums(verdict.challenger)}]
    if verdict.champion:
        rows.append({"model": f"champion v{verdict.champion_version}", "set": "frozen", **_nums(verdict.champion)})
    if report:
        rows.append({"model": "tf-idf + logreg", "set": "newest test", **_nums(report.tfidf_logreg)})
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
        f"Frozen evaluation set: {verdict.eval_size} texts {verdict.eval_sources}, `{verdict.eval_uri}`\n",
        description=f"Gate verdict for v{verdict.version}",
    )
    why = verdict.reasons or "all rules passed"
    reporting.logger().info("gate %s for %s v%s: %s", title, verdict.model, verdict.version, why)
