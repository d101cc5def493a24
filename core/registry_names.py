"""Names shared through the registry and the event bus: tags, aliases, events, resource ids. Standard library only.

A service that only needs the name of the promotion event imports this module, not a stage (which would load
torch, MLflow and ONNX Runtime). Model-version tags are grouped by prefix so they sort together in the MLflow UI:

- `zero2one.gate.*`     the gate's verdict: passed/failed, the failed rules and why, what it compared with
- `zero2one.lineage.*`  where the version came from: data, checkpoint, config, code, MLflow runs, Prefect flow run
- `zero2one.metrics.*`  the headline numbers on the newest test split (full precision lives in MLflow metrics)
- `zero2one.promotion.*` when and why it became champion (on versions); the history of moves (on the model)

Everything bulky (per-rule values, the frozen evaluation set, the config) lives in the model card, the gate's
`verdict.json` and the register run's `pipeline_config.json`, not in tags.
"""

from __future__ import annotations

from collections.abc import Mapping

# The registered model's default name per task (`RegisterConfig`, the CLI, serving and flows read it here)
DEFAULT_MODEL_NAMES = {
    "classification": "zero2one-classifier",
    "generation": "zero2one-generator",
    "entities": "zero2one-entities",
    "answers": "zero2one-answers",
}
DEFAULT_MODEL_NAME = DEFAULT_MODEL_NAMES["classification"]

# Aliases
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"

# Prefect events, both on resource `model_resource_id(name)`
PROMOTED_EVENT = "zero2one.model.promoted"
DRIFT_EVENT = "zero2one.drift.detected"

# What a version is
KIND = "zero2one.kind"  # "finetuned" or "baseline"
SERVING_VARIANT = "zero2one.serving_variant"  # what the optimize stage chose to serve (e.g. onnx-int8)

# The gate's verdict
GATE_VERDICT = "zero2one.gate.verdict"  # "passed" or "failed"
GATE_FAILED_RULES = "zero2one.gate.failed_rules"  # comma-separated rule names, "none" when all passed
GATE_REASONS = "zero2one.gate.reasons"  # one "rule: reason" line per failed rule (only when it failed)
GATE_CHAMPION_VERSION = "zero2one.gate.champion_version"  # the champion it was compared with, or "none"
GATE_RUN = "zero2one.gate.run_id"  # the gate's MLflow run (verdict.json with every rule's value)
GATE_BASELINE_VERSION = "zero2one.gate.baseline_version"  # the TF-IDF baseline registered because it won
GATE_CHALLENGER = "zero2one.gate.challenger"  # on a baseline version: the challenger it beat
GATE_BASELINE_OFF = "zero2one.gate.baseline_rule_off"  # why the baseline rule was switched off (only then)
# "rule: not judged|not set: why" per rule that passed without judging (too few newest rows, a minimum of 0)
GATE_NOT_JUDGED = "zero2one.gate.not_judged"
GATE_EVAL_ROWS = "zero2one.gate.eval_rows"  # frozen rows, and the test texts left out because a model trained on them

# Lineage
LINEAGE_DATA_FINGERPRINT = "zero2one.lineage.data_fingerprint"
LINEAGE_DATA_URI = "zero2one.lineage.data_uri"
LINEAGE_CHECKPOINT_URI = "zero2one.lineage.checkpoint_uri"
LINEAGE_BASELINE_URI = "zero2one.lineage.baseline_uri"
LINEAGE_BASE_MODEL = "zero2one.lineage.base_model"
LINEAGE_CONFIG_HASH = "zero2one.lineage.config_hash"
# `runs:/<register run>/pipeline_config.json`: the whole pipeline config the version was trained with (a retrain
# of it starts from these settings)
LINEAGE_CONFIG_URI = "zero2one.lineage.config_uri"
LINEAGE_CODE_VERSION = "zero2one.lineage.code_version"
LINEAGE_FLOW_RUN = "zero2one.lineage.flow_run_id"
LINEAGE_PRETRAIN_RUN = "zero2one.lineage.pretrain_run_id"
LINEAGE_FINETUNE_RUN = "zero2one.lineage.finetune_run_id"
LINEAGE_EVAL_RUN = "zero2one.lineage.eval_run_id"
LINEAGE_OPTIMIZE_RUN = "zero2one.lineage.optimize_run_id"

# Headline metrics (4 decimals; MLflow metrics keep full precision)
METRIC_MACRO_F1 = "zero2one.metrics.test_macro_f1"
METRIC_ACCURACY = "zero2one.metrics.test_accuracy"
METRIC_EVAL_PASSED = "zero2one.metrics.eval_passed"
METRIC_CHRF = "zero2one.metrics.test_chrf"  # generators: chrF (0-100) of greedy answers on the test prompts
METRIC_EXACT_MATCH = "zero2one.metrics.test_exact_match"
METRIC_PERPLEXITY = "zero2one.metrics.test_perplexity"  # of the reference answers
METRIC_ENTITY_F1 = "zero2one.metrics.test_entity_f1"  # taggers: strict entity-level micro F1 on the test split
METRIC_ANSWER_F1 = "zero2one.metrics.test_answer_f1"  # question answerers: SQuAD (or CMRC) F1 on the test split
# What serves (the optimize stage's choice): its name ("onnx-int8", "onnx-fp32", "pytorch") and its test score,
# measured by the optimize stage's parity run (the numbers above are PyTorch's)
SERVED_RUNTIME = "zero2one.metrics.served_runtime"
SERVED_MACRO_F1 = "zero2one.metrics.served_test_macro_f1"
SERVED_CHRF = "zero2one.metrics.served_test_chrf"
SERVED_EXACT_MATCH = "zero2one.metrics.served_test_exact_match"
SERVED_ENTITY_F1 = "zero2one.metrics.served_test_entity_f1"
SERVED_ANSWER_F1 = "zero2one.metrics.served_test_answer_f1"
# ... and PyTorch's score on those same rows (the parity run may read fewer rows than the evaluation): the served
# score is compared with this one, like for like, never with the evaluation's number on the whole test split
SERVED_PYTORCH_SAME_ROWS = "zero2one.metrics.served_pytorch_same_rows"
SERVED_ROWS = "zero2one.metrics.served_rows"
COMPRESSION = "zero2one.compression"  # a compressed student: teacher, what was removed, what it kept
TASK = "zero2one.task"  # the model kind: "classification", "generation", "entities"

# Promotion: on the version that became champion, and the history of moves
PROMOTION_SINCE = "zero2one.promotion.since"
PROMOTION_REASON = "zero2one.promotion.reason"
PROMOTION_ROLLED_BACK_AT = "zero2one.promotion.rolled_back_at"
HISTORY_PREFIX = "zero2one.promotion."  # + 6-digit sequence number: one JSON record per move
HISTORY_OF = "zero2one.history_of"  # tag of the MLflow run that holds a model's history (value: the model name)
CHAMPION_TAG = "zero2one.champion"  # on the registered model: "v2 (macro-F1 0.8123)", shown in the models list

# Version tags as they were named before the grouping: read as a fallback, so older registries keep working.
_LEGACY = {
    LINEAGE_DATA_FINGERPRINT: "zero2one.data_fingerprint",
    LINEAGE_DATA_URI: "zero2one.data_uri",
    LINEAGE_CHECKPOINT_URI: "zero2one.checkpoint_uri",
    LINEAGE_BASELINE_URI: "zero2one.baseline_uri",
    LINEAGE_BASE_MODEL: "zero2one.base_model",
    LINEAGE_PRETRAIN_RUN: "zero2one.pretrain_run_id",
    LINEAGE_FINETUNE_RUN: "zero2one.finetune_run_id",
    LINEAGE_EVAL_RUN: "zero2one.eval_run_id",
    LINEAGE_FLOW_RUN: "prefect.flow_run_id",
    LINEAGE_CONFIG_HASH: "zero2one.config_hash",
    LINEAGE_CODE_VERSION: "zero2one.code_version",
    METRIC_MACRO_F1: "zero2one.test_macro_f1",
    METRIC_ACCURACY: "zero2one.test_accuracy",
}


def model_resource_id(name: str) -> str:
    """The Prefect resource that promotion and drift events of model `name` are about."""
    return f"zero2one.model.{name}"


def read_tag(tags: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """A version tag by its current name, else by its name before the grouping (versions registered earlier)."""
    if name in tags:
        return tags[name]
    return tags.get(_LEGACY.get(name, name), default)


def failed_reasons(tags: Mapping[str, str]) -> list[str]:
    """The gate's reasons for refusing a version, read back from its tags (empty when it passed)."""
    if GATE_REASONS in tags or GATE_FAILED_RULES in tags:
        return [line for line in tags.get(GATE_REASONS, "").splitlines() if line.strip()]
    # Before the grouping: one `zero2one.gate.<rule>` tag per rule, its reason in `zero2one.gate.<rule>.reason`.
    rules = [k for k, v in tags.items() if k.startswith("zero2one.gate.") and k.count(".") == 2 and v == "failed"]
    rules = [k for k in rules if k != GATE_VERDICT]
    return [f"{k.removeprefix('zero2one.gate.')}: {tags.get(k + '.reason', '?')}" for k in sorted(rules)]
