"""The answers gate: may the new reader replace the champion? The classifier's rules on answer F1, against the
lexical baseline.

Both readers and the lexical baseline (its width chosen on the challenger's validation questions) answer one frozen
set: the champion's test questions plus the newest ones (each capped as `answer_evaluate.max_questions`, seeded),
deduplicated, less every question whose context either model trained or validated on. Rules: the evaluation
passed; answer F1 reaches `gate.min_value` and beats the lexical baseline by `gate.baseline_margin`; it beats or is
not worse than the champion (`gate.compare`, `gate.margin`); an ONNX graph passed parity when the optimize stage ran.
"""

from __future__ import annotations

import pandas as pd

from core import reporting
from core.fingerprint import hash_json
from core.registry_names import LINEAGE_CHECKPOINT_URI, LINEAGE_DATA_URI, read_tag
from core.tracking import Tracking
from core.workspace import Workspace, exists, join
from tasks.judging.gate_records import new_verdict, record_verdict
from tasks.judging.gate_rules import champion_rule, evaluation_rule, parity_rule
from tasks.judging.report_rows import rule_rows
from tasks.kinds.answers.evaluation import AnswerEvaluateConfig
from tasks.kinds.answers.judging_stage import answer_rules, lexical, lexical_answers, read, score, texts
from tasks.kinds.answers.reader import QAExample
from tasks.kinds.answers.splits import questions, rows_to_questions, sample
from tasks.registry.versions import champion_to_beat, model_dir
from tasks.results.answers import AnswersReport, OptimizedReader, PreparedQuestions
from tasks.results.registry import GateVerdict, RegisteredModel
from tasks.stage_configs import GateConfig


def _split(uri: str, split: str) -> list[QAExample]:
    import datasets

    return rows_to_questions(datasets.load_from_disk(join(uri, "splits"))[split])


def frozen_questions(
    data: PreparedQuestions, champion_data: str | None, cfg: AnswerEvaluateConfig
) -> tuple[list[QAExample], dict[str, int]]:
    """The newest test questions plus the champion's, deduplicated, less those on a context either model saw."""
    newest = questions(data, "test", cfg.max_questions, cfg.seed)
    seen_contexts = {ex.context for split in ("train", "validation") for ex in questions(data, split)}
    older: list[QAExample] = []
    if champion_data and exists(join(champion_data, "splits", "dataset_dict.json")):
        older = sample(_split(champion_data, "test"), cfg.max_questions, cfg.seed)
        seen_contexts |= {ex.context for split in ("train", "validation") for ex in _split(champion_data, split)}
    kept, frozen, excluded = set(), [], 0
    for ex in newest + older:
        key = (ex.question.strip(), ex.context)
        if key in kept:
            continue
        kept.add(key)
        if ex.context in seen_contexts:
            excluded += 1
        else:
            frozen.append(ex)
    return frozen, {"newest": len(newest), "champion": len(older), "excluded_trained_on": excluded}


def gate_answers(
    cfg: GateConfig,
    data: PreparedQuestions,
    registered: RegisteredModel,
    report: AnswersReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    parity: OptimizedReader | bool | None = None,
    settings: AnswerEvaluateConfig | None = None,  # the flow passes the kind's evaluate section: the same caps
) -> GateVerdict:
    """Answer the frozen set with challenger, champion and the lexical baseline, apply the rules, record the verdict."""
    caps = settings if isinstance(settings, AnswerEvaluateConfig) else AnswerEvaluateConfig()
    champion = champion_to_beat(tracking.client(), registered)
    champion_data = read_tag(champion.tags, LINEAGE_DATA_URI) if champion else None
    frozen, sources = frozen_questions(data, champion_data, caps)
    readers = {"challenger": registered} | ({"champion": champion} if champion else {})
    scores = {who: score(frozen, texts(read(_load(tracking, v), frozen)), data.scoring) for who, v in readers.items()}
    width, _ = lexical(questions(data, "validation", caps.max_validation_questions, caps.seed), data.scoring)
    scores["lexical"] = score(frozen, lexical_answers(frozen, width), data.scoring)
    f1, old = scores["challenger"].f1, scores["champion"].f1 if champion else None
    named = cfg.model_copy(update={"metric": "answer F1"})  # how the champion rule names the number
    rules = [
        evaluation_rule(report),
        *answer_rules(cfg, f1, scores["lexical"].f1),
        champion_rule(named, f1, old, str(champion.version) if champion else None, None),
        parity_rule(parity),
    ]
    rows = pd.DataFrame(
        {"id": [ex.id for ex in frozen], "question": [ex.question for ex in frozen],
         "answers": [" | ".join(a.text for a in ex.answers) for ex in frozen]}
    )  # fmt: skip
    fingerprint = hash_json(rows.values.tolist(), [ex.context for ex in frozen])
    verdict = new_verdict(registered, champion, rules, "f1", scores, "lexical", rows, fingerprint, sources, ws)
    record_verdict(verdict, scores, registered, tracking, parent_run_id)
    reporting.markdown(
        "gate",
        f"# Gate: {'passed' if verdict.passed else 'failed'} ({len(frozen)} frozen questions)\n\n"
        f"{reporting.md_table(rule_rows(verdict.rules))}\n",
    )
    return verdict


def _load(tracking: Tracking, version):
    """A registered reader, from its checkpoint folder when it is still there, else from its artifact."""
    from models.span_reader import SpanReader

    checkpoint = read_tag(version.tags, LINEAGE_CHECKPOINT_URI)
    return SpanReader.load(model_dir(tracking, version.name, str(version.version), checkpoint))
