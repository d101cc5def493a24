"""The gate for generators (`task: generation`): the rules of `tasks/judging/gate.py` on the generation metric.

Challenger and champion answer the same frozen prompts (the champion's test prompts plus the newest ones,
deduplicated by prompt, at most `evaluate_generation.max_prompts` from each), greedily with the evaluation's
`max_new_tokens`; answers are scored by chrF or exact match (`gate.generation_metric`). Rules: the evaluation
passed; the challenger reaches `min_value`; it beats the retrieval baseline (the answer of the most similar training
prompt, the generation analogue of the TF-IDF rule) by `baseline_margin`; it beats or is not worse than the
champion (`compare`, `margin`) on all prompts and on the newest ones alone; and an ONNX graph passed the
optimize_generation stage's parity gate (as for classifiers: none passed, the rule fails and says why). No prompt
either model trained on is judged. `min_value` and the margins are fractions of the metric's range, so 0.01 is one
chrF point. The verdict is recorded exactly as for classifiers.
"""

from __future__ import annotations

import json

import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.registry_names import LINEAGE_DATA_URI, read_tag
from core.tracking import Tracking
from core.workspace import Workspace, exists, join
from models.generator import TextGenerator
from tasks.judging.gate_records import new_verdict, record_verdict
from tasks.judging.gate_rules import champion_rule, evaluation_rule, not_judged, parity_rule
from tasks.judging.quality import minimum
from tasks.judging.report_rows import generation_verdict_rows, rule_rows
from tasks.judging.scoring import retrieval_answers, score_answers
from tasks.kinds.generation.chats import prompt_key
from tasks.registry.versions import champion_to_beat, load_generator
from tasks.results.common import Messages
from tasks.results.data import PreparedInstructions
from tasks.results.generation import GenerationReport, OptimizedGenerator
from tasks.results.registry import GateVerdict, RegisteredModel
from tasks.results.scores import GenerationScores, RuleResult
from tasks.stage_configs import EvaluateGenerationConfig, GateConfig

SCALE = {"chrf": 100.0, "exact_match": 1.0}  # the metric's range: the gate's fractions are multiplied by it
LABEL = {"chrf": "chrF", "exact_match": "exact match"}


def gate_generation(
    cfg: GateConfig,
    data: PreparedInstructions,
    registered: RegisteredModel,
    report: GenerationReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    parity: OptimizedGenerator | bool | None = None,
    settings: EvaluateGenerationConfig | None = None,
) -> GateVerdict:
    """Challenger, champion and retrieval on the frozen prompts; the same rules and records as the
    classifier's gate (`tasks/kinds/classification/gate.py`); `settings` says how to generate.

    `parity` is the optimize_generation stage's result (`OptimizedGenerator`), or whether it passed, or None when
    it did not run: the parity rule fails where no ONNX graph matched PyTorch."""
    ev, metric = settings or EvaluateGenerationConfig(), cfg.generation_metric
    tracking.activate()
    client = tracking.client()
    champion = champion_to_beat(client, registered)
    chats, newest, sources = frozen_prompts(data, champion, ev.max_prompts)
    versions = {"challenger": registered.version} | ({"champion": str(champion.version)} if champion else {})
    scores, newest_scores = _judge(client, tracking, registered.name, versions, data, chats, newest, ev)
    rules = _rules(cfg, metric, scores, newest_scores, sum(newest), report, champion)
    rules.append(parity_rule(parity))
    frozen = pd.DataFrame({"messages": [json.dumps(m, ensure_ascii=False) for m in chats], "newest": newest})
    fingerprint = hash_json(frozen.values.tolist())
    verdict = new_verdict(registered, champion, rules, metric, scores, "retrieval", frozen, fingerprint, sources, ws)
    record_verdict(verdict, scores, registered, tracking, parent_run_id)
    _report(verdict)
    return verdict


def _judge(client, tracking, name, versions, data, chats, newest, ev) -> tuple[dict, dict]:
    """Every model's scores on all frozen prompts, and on the newest ones alone (empty when there are none)."""
    answers = {who: _answers(load_generator(client, name, v, tracking), chats, ev) for who, v in versions.items()}
    answers["retrieval"] = retrieval_answers(_train_chats(data), chats)
    references = [m[-1]["content"] for m in chats]
    scores = {who: score_answers(a, references) for who, a in answers.items()}
    if not any(newest):
        return scores, {}
    pick = [i for i, n in enumerate(newest) if n]
    newest_refs = [references[i] for i in pick]
    return scores, {who: score_answers([a[i] for i in pick], newest_refs) for who, a in answers.items()}


def frozen_prompts(
    data: PreparedInstructions, champion: ModelVersion | None, limit: int | None
) -> tuple[list[Messages], list[bool], dict[str, int]]:
    """The champion's test chats plus the newest ones, deduplicated by prompt; `newest` marks the new ones.

    A prompt either model trained on (train or validation chats of its own data) is left out, before `limit`: a
    run on an updated file re-splits everything (and retrieval would answer it from its training chats)."""
    trained = _trained_prompts(data.splits_uri)
    old_test: list[Messages] = []
    if champion is not None:
        old_splits = _champion_splits(champion)
        trained |= _trained_prompts(old_splits)
        old_test = _test_chats(old_splits)
    newest = _test_chats(data.splits_uri)
    old = [m for m in old_test if prompt_key(m) not in trained][:limit]
    seen = {prompt_key(m) for m in old_test}  # a prompt in both keeps the champion's reference
    new = [m for m in newest if prompt_key(m) not in trained and prompt_key(m) not in seen][:limit]
    excluded = len({prompt_key(m) for m in old_test + newest} & trained)
    sources = {"newest_test": len(newest), "new_since_champion": len(new), "excluded_trained_on": excluded}
    if champion is not None:
        sources["champion_test"] = len(old_test)
    if not old + new:
        raise PipelineInputError(
            f"the gate has no prompts to judge on: every test prompt of {data.uri} (and of the champion's test "
            "split) is in the training or validation chats of the champion or the challenger"
        )
    return old + new, [False] * len(old) + [True] * len(new), sources | {"frozen": len(old) + len(new)}


def _champion_splits(champion: ModelVersion) -> str:
    data_uri = read_tag(champion.tags, LINEAGE_DATA_URI)
    if not data_uri or not exists(join(data_uri, "splits", "dataset_dict.json")):
        raise PipelineInputError(
            f"champion v{champion.version} has no test prompts to compare on (tag {LINEAGE_DATA_URI}={data_uri!r} "
            "does not point at prepared instruction data). Restore that folder, or promote by hand: "
            "zero2one promote --force --reason ..."
        )
    return join(data_uri, "splits")


def _test_chats(splits_uri: str) -> list[Messages]:
    import datasets

    return [list(m) for m in datasets.load_from_disk(splits_uri)["test"]["messages"]]


def _trained_prompts(splits_uri: str) -> set[str]:
    """The prompts of every chat a model trained on (train) or was validated on (validation)."""
    import datasets

    splits = datasets.load_from_disk(splits_uri)
    return {prompt_key(list(m)) for name in ("train", "validation") if name in splits for m in splits[name]["messages"]}


def _train_chats(data: PreparedInstructions) -> list[Messages]:
    import datasets

    return list(datasets.load_from_disk(data.splits_uri)["train"]["messages"])


def _answers(generator: TextGenerator, chats: list[Messages], ev: EvaluateGenerationConfig) -> list[str]:
    """Greedy answers, exactly as the evaluate stage generates them."""
    return generator.generate([m[:-1] for m in chats], ev.max_new_tokens, seed=ev.seed, batch_size=ev.batch_size)


def _rules(
    cfg: GateConfig,
    metric: str,
    scores: dict[str, GenerationScores],
    newest: dict[str, GenerationScores],
    newest_rows: int,
    report: GenerationReport,
    champion: ModelVersion | None,
) -> list[RuleResult]:
    scale, label = SCALE[metric], LABEL[metric]
    value = getattr(scores["challenger"], metric)
    version = str(champion.version) if champion else None
    old = getattr(scores["champion"], metric) if "champion" in scores else None
    scaled = cfg.model_copy(update={"metric": label, "margin": cfg.margin * scale})  # champion_rule's reason and bar
    return [
        evaluation_rule(report),
        _min_rule(cfg, label, value, scale),
        _retrieval_rule(cfg, label, value, getattr(scores["retrieval"], metric), scale),
        champion_rule(scaled, value, old, version, None),
        _newest_rule(cfg, label, metric, newest, newest_rows, version, scale),
    ]


def _min_rule(cfg: GateConfig, label: str, value: float, scale: float) -> RuleResult:
    needed = cfg.min_value * scale
    if needed <= 0:
        return minimum("min_value", label, value, needed, "gate.min_value")
    ok = value >= needed - 1e-12
    reason = f"{label} {value:.4f} {'>=' if ok else '<'} gate.min_value={cfg.min_value} ({needed:.4f})"
    return RuleResult(name="min_value", passed=ok, value=f"{value:.4f}", reason=reason)


def _retrieval_rule(cfg: GateConfig, label: str, value: float, baseline: float, scale: float) -> RuleResult:
    """Beat the retrieval baseline strictly, by at least `baseline_margin` of the metric's range."""
    margin = cfg.baseline_margin * scale
    beats = value > baseline + 1e-12 and value - baseline >= margin - 1e-12
    text = f"{label} {value:.4f} {'beats' if beats else 'does not beat'} the retrieval baseline {baseline:.4f}"
    text += f" (+{margin:.4f} margin)"
    if not cfg.baseline_rule:
        return RuleResult(
            name="baseline", passed=True, value="off", reason=f"switched off ({cfg.baseline_rule_off_reason}): {text}"
        )
    return RuleResult(name="baseline", passed=beats, value=f"{value:.4f} vs {baseline:.4f}", reason=text)


def _newest_rule(
    cfg: GateConfig,
    label: str,
    metric: str,
    newest: dict[str, GenerationScores],
    rows: int,
    version: str | None,
    scale: float,
) -> RuleResult:
    """Not worse than the champion on the prompts that are new since its test split."""
    if not cfg.newest_rule:
        return RuleResult(name="newest", passed=True, value="off", reason="switched off (gate.newest_rule=false)")
    if version is None:
        return RuleResult(name="newest", passed=True, value="none", reason="no champion to compare with")
    if "champion" not in newest or rows < cfg.newest_min_rows:
        return not_judged("newest", rows, cfg.newest_min_rows, f"test prompts are new since champion v{version}")
    new, old = getattr(newest["challenger"], metric), getattr(newest["champion"], metric)
    needed = old - cfg.newest_margin * scale
    ok = new >= needed - 1e-12
    reason = f"{label} on the {rows} newest prompts {new:.4f} vs champion v{version} {old:.4f}; needs >= {needed:.4f}"
    return RuleResult(name="newest", passed=ok, value=f"{new:.4f} vs {old:.4f}", reason=reason)


def _report(verdict: GateVerdict) -> None:
    title = "passed" if verdict.passed else "failed"
    reporting.markdown(
        "gate",
        f"# Gate {title}: {verdict.model} v{verdict.version}\n\n"
        f"{reporting.md_table(generation_verdict_rows(verdict))}\n\n{reporting.md_table(rule_rows(verdict.rules))}\n\n"
        f"Frozen prompts: {verdict.eval_rows_note} {verdict.eval_sources}, `{verdict.eval_uri}`\n",
        description=f"Gate verdict for v{verdict.version}",
    )
    numbers = ", ".join(f"{r['model']} chrF {r['chrF']}" for r in generation_verdict_rows(verdict))
    why = "; ".join(verdict.reasons) or "all rules passed"
    reporting.logger().info("gate %s for %s v%s (%s): %s", title, verdict.model, verdict.version, numbers, why)
