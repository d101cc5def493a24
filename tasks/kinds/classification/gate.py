"""The classifier's gate: may the new version (the challenger) replace the champion?

Both models run side by side, in this task, on one frozen evaluation set: the champion's test
split plus the newest test split, deduplicated by text (the newest label wins), less every text either
model trained on (a run on an updated file re-splits it; the count left out is in the verdict). A fixed set
seen by both and trained on by neither is the only fair comparison; each model's own test score is not.

Rules (all must pass): the evaluate stage passed; on the frozen set the challenger reaches
`min_value` and beats the TF-IDF + logistic regression baseline by `baseline_margin` (the same
rules as the evaluate verdict, `tasks/judging/quality.py`); it beats the champion by `margin`
(`compare: beat`) or is at most `margin` worse (`compare: not_worse`); it is not worse than the
champion on the newest test rows alone (after drift: the labeled window's held-out rows; with fewer than
`newest_min_rows` the rule is "not judged", shown as such); when the optimization stage ran, an ONNX
graph passed its parity check; and, when the compress stage ran, the registered checkpoint is the one its floor
chose (`compression`: the student that kept it, else the teacher, with the rule that refused each candidate).
A minimum of 0 shows as "not set". The verdict and every rule's value and reason become tags on the model version
and on its MLflow run, and a Prefect markdown artifact.

Where the baseline beats the challenger, it is registered as a version of its own (tagged
`zero2one.kind=baseline`, with its own verdict on the same rows), never promoted automatically:
`zero2one promote` ships it in one command. The gate moves no alias: `tasks/registry/promotion.py` does.

Generators get the same rules on chrF or exact match, against the retrieval baseline (`tasks/kinds/generation/
gate.py`); the gate stage (`tasks/judging/gate.py`) asks the model kind which gate judges.

Where things live: the config in `tasks/stage_configs.py`, the verdict type in `tasks/results.py`, the relative
rules in `tasks/judging/gate_rules.py`, the champion lookup and model loading in `tasks/registry/versions.py`, the
records both gates leave in `tasks/judging/gate_records.py`, the baseline's registration in
`tasks/kinds/classification/registry.py`.
"""

from __future__ import annotations

import datasets
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from pydantic import BaseModel

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.registry_names import GATE_CHALLENGER, LINEAGE_CHECKPOINT_URI, LINEAGE_DATA_URI, read_tag
from core.tracking import Tracking
from core.workspace import Workspace, exists, join
from tasks.data.loaders import load_baseline
from tasks.judging.gate_records import new_verdict, record_verdict, tag_version
from tasks.judging.gate_rules import champion_rule, compression_rule, evaluation_rule, newest_rule, parity_rule
from tasks.judging.quality import baseline_rule, min_rule
from tasks.judging.report_rows import rule_rows, verdict_rows
from tasks.judging.scoring import score
from tasks.kinds.classification.registry import register_baseline
from tasks.registry.versions import champion_to_beat, load_predictor
from tasks.results import (
    Compression,
    EvalReport,
    GateVerdict,
    OptimizedGenerator,
    OptimizedModel,
    PreparedData,
    RegisteredModel,
    RuleResult,
    Scores,
)
from tasks.stage_configs import GateConfig


class _Judged(BaseModel):
    """Predictions on the frozen set (label indices, -1 for a label the data lacks) and their scores."""

    predictions: dict[str, list[int]]
    scores: dict[str, Scores]
    newest: dict[str, Scores]
    newest_rows: int


def gate_classifier(
    cfg: GateConfig,
    data: PreparedData,
    registered: RegisteredModel,
    report: EvalReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    parity: OptimizedModel | bool | None = None,
    settings: None = None,  # a classifier's gate needs no settings beyond `cfg`
    compression: Compression | None = None,
) -> GateVerdict:
    """Run challenger, champion and TF-IDF baseline on the frozen set, apply the rules, and record the verdict.

    `parity` is the optimize stage's result (or only whether it passed; None when it did not run): the parity rule.
    `compression` is the compress stage's result (None when it did not run): the compression rule.
    """
    tracking.activate()
    client = tracking.client()
    champion = champion_to_beat(client, registered)
    eval_set, sources = frozen_eval_set(data, champion)
    judged, labels_differ = _judge(cfg, client, tracking, registered, champion, report, eval_set, data.labels)
    rules = _rules(cfg, judged, report, champion, labels_differ, parity)
    if compression is not None:
        rules.append(compression_rule(compression, read_tag(registered.tags, LINEAGE_CHECKPOINT_URI), parity))
    fingerprint = hash_json(eval_set[["text", "label"]].values.tolist())
    verdict = new_verdict(
        registered, champion, rules, cfg.metric, judged.scores, "baseline", eval_set, fingerprint, sources, ws
    )
    if _baseline_wins(cfg, rules, report):
        verdict.baseline_version = _register_baseline(
            cfg, data, report, verdict, judged, champion, labels_differ, tracking
        )
    record_verdict(verdict, judged.scores, registered, tracking, parent_run_id)
    _report(verdict, report)
    return verdict


def frozen_eval_set(data: PreparedData, champion: ModelVersion | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The champion's test split plus the newest one, deduplicated by text: rows both models are judged on.

    A text either model trained on (train or validation split of its own data) is left out: a run on an updated
    file re-splits everything, so one run's test rows can be the other's training rows. Column `newest` marks the
    rows that are not in the champion's test split (all rows without a champion).
    """
    newest = _split_frame(data.splits_uri, "test").assign(newest=True)
    trained = _trained_texts(data.splits_uri)
    if champion is None:
        both, sources = newest, {"newest_test": len(newest)}
    else:
        splits = champion_splits(champion, "test data")
        old = _split_frame(splits, "test")
        trained |= _trained_texts(splits)
        newest["newest"] = ~newest["text"].isin(set(old["text"]))
        both = pd.concat([old.assign(newest=False), newest], ignore_index=True).drop_duplicates("text", keep="last")
        both = both[both["label"].isin(data.labels)]
        sources = {"champion_test": len(old), "newest_test": len(newest)}
    seen = both["text"].isin(trained)
    both = both[~seen].reset_index(drop=True)
    if both.empty:
        raise PipelineInputError(
            f"the gate has no rows to judge on: every test text of {data.uri} (and of the champion's test split) is "
            "in the training or validation data of the champion or the challenger. Prepare data with a test split "
            "neither model trained on"
        )
    sources |= {"excluded_trained_on": int(seen.sum()), "new_since_champion": int(both["newest"].sum())}
    return both, sources | {"frozen": len(both)}


def champion_splits(champion: ModelVersion, what: str) -> str:
    """The champion's prepared splits, from its lineage tag; a clear error where that folder is gone."""
    data_uri = read_tag(champion.tags, LINEAGE_DATA_URI)
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"champion v{champion.version} has no {what} to compare on (tag {LINEAGE_DATA_URI}={data_uri!r} "
            "does not point at prepared data). Restore that folder, or promote by hand: "
            "zero2one promote --force --reason ..."
        )
    return join(data_uri, "splits")


def _split_frame(splits_uri: str, split: str) -> pd.DataFrame:
    rows = datasets.load_from_disk(splits_uri)[split]
    names = rows.features["label"].names
    return pd.DataFrame({"text": list(rows["text"]), "label": [names[i] for i in rows["label"]]})


def _trained_texts(splits_uri: str) -> set[str]:
    """Every text a model trained on (train) or chose its checkpoint and baseline on (validation)."""
    splits = datasets.load_from_disk(splits_uri)
    return {t for name in ("train", "validation") if name in splits for t in splits[name]["text"]}


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
    parity: OptimizedModel | OptimizedGenerator | bool | None,
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
        rules.append(parity_rule(parity))
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
    tag_version(tracking.client(), registered, verdict.tags() | {GATE_CHALLENGER: challenger.version})
    title = "may be promoted (first runs: gate.baseline_as_champion)" if verdict.passed else "did not pass either"
    reporting.logger().info(
        "the TF-IDF baseline beat v%s and is registered as %s v%s; it %s: %s",
        challenger.version,
        registered.name,
        registered.version,
        title,
        "; ".join(verdict.reasons) or f"zero2one promote --model {registered.name} --version {registered.version}",
    )
    return registered.version


def _report(verdict: GateVerdict, report: EvalReport) -> None:
    title = "passed" if verdict.passed else "failed"
    reporting.markdown(
        "gate",
        f"# Gate {title}: {verdict.model} v{verdict.version}\n\n"
        f"{reporting.md_table(verdict_rows(verdict, report))}\n\n{reporting.md_table(rule_rows(verdict.rules))}\n\n"
        f"Frozen evaluation set: {verdict.eval_rows_note} {verdict.eval_sources}, `{verdict.eval_uri}`\n"
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
