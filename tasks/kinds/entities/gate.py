"""The entity gate: may the new tagger replace the champion? The classifier's rules on entity F1, against the CRF.

Both taggers and the CRF (fit on the challenger's training sentences) tag one frozen set: the champion's test
sentences plus the newest ones, deduplicated, less every sentence either model trained on. Rules: the evaluation
passed; entity F1 reaches `gate.min_value` and beats the CRF by `gate.baseline_margin`; it beats or is not worse
than the champion (`gate.compare`, `gate.margin`); an ONNX graph passed parity when the optimize stage ran.
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
from tasks.kinds.entities.judging import baselines, entity_rules, score
from tasks.kinds.entities.sentence import Sentence
from tasks.kinds.entities.splits import sentences
from tasks.registry.versions import champion_to_beat, model_dir
from tasks.results.entities import EntityReport, OptimizedTagger, PreparedEntities
from tasks.results.registry import GateVerdict, RegisteredModel
from tasks.stage_configs import GateConfig


def _split(uri: str, split: str) -> list[Sentence]:
    import datasets

    rows = datasets.load_from_disk(join(uri, "splits"))[split]
    return [Sentence(words=w, tags=t) for w, t in zip(rows["words"], rows["tags"], strict=True)]


def frozen_sentences(data: PreparedEntities, champion_data: str | None) -> tuple[list[Sentence], dict[str, int]]:
    """The newest test sentences plus the champion's, deduplicated by text, less any either model trained on."""
    newest = sentences(data, "test")
    trained = {" ".join(s.words) for split in ("train", "validation") for s in sentences(data, split)}
    older: list[Sentence] = []
    if champion_data and exists(join(champion_data, "splits", "dataset_dict.json")):
        older = _split(champion_data, "test")
        trained |= {" ".join(s.words) for split in ("train", "validation") for s in _split(champion_data, split)}
    seen, frozen, excluded = set(), [], 0
    for s in newest + older:
        text = " ".join(s.words)
        if text in seen:
            continue
        seen.add(text)
        if text in trained:
            excluded += 1
        else:
            frozen.append(s)
    return frozen, {"newest": len(newest), "champion": len(older), "excluded_trained_on": excluded}


def gate_entities(
    cfg: GateConfig,
    data: PreparedEntities,
    registered: RegisteredModel,
    report: EntityReport,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    parity: OptimizedTagger | bool | None = None,
    settings: object = None,  # the entity gate needs no settings beyond `cfg`
) -> GateVerdict:
    """Tag the frozen set with challenger, champion and CRF, apply the rules, and record the verdict."""
    from models.token_classifier import Tagger

    client = tracking.client()
    champion = champion_to_beat(client, registered)
    champion_data = read_tag(champion.tags, LINEAGE_DATA_URI) if champion else None
    frozen, sources = frozen_sentences(data, champion_data)
    words, gold = [s.words for s in frozen], [s.tags for s in frozen]
    taggers = {"challenger": registered} | ({"champion": champion} if champion else {})
    scores = {
        who: score(gold, [tags for tags, _ in _load(Tagger, tracking, v).tag(words)]) for who, v in taggers.items()
    }
    crf = baselines(sentences(data, "train"), sentences(data, "validation"))["crf"]
    scores["crf"] = score(gold, crf.predict(words))
    f1, old = scores["challenger"].f1, scores["champion"].f1 if champion else None
    named = cfg.model_copy(update={"metric": "entity F1"})  # how the champion rule names the number
    rules = [
        evaluation_rule(report),
        *entity_rules(cfg, f1, scores["crf"].f1),
        champion_rule(named, f1, old, str(champion.version) if champion else None, None),
        parity_rule(parity),
    ]
    rows = pd.DataFrame({"text": [" ".join(w) for w in words], "tags": [" ".join(t) for t in gold]})
    fingerprint = hash_json(rows.values.tolist())
    verdict = new_verdict(registered, champion, rules, "f1", scores, "crf", rows, fingerprint, sources, ws)
    record_verdict(verdict, scores, registered, tracking, parent_run_id)
    reporting.markdown(
        "gate",
        f"# Gate: {'passed' if verdict.passed else 'failed'} ({len(frozen)} frozen sentences)\n\n"
        f"{reporting.md_table(rule_rows(verdict.rules))}\n",
    )
    return verdict


def _load(tagger_type, tracking: Tracking, version):
    """A registered tagger, from its checkpoint folder when it is still there, else from its artifact."""
    name = version.name
    checkpoint = read_tag(version.tags, LINEAGE_CHECKPOINT_URI)
    return tagger_type.load(model_dir(tracking, name, str(version.version), checkpoint))
