"""What the entity evaluation and the entity gate compute the same way: scores, baselines and the absolute rules."""

from __future__ import annotations

from tasks.judging.quality import minimum
from tasks.kinds.entities.baselines import CRFConfig, CRFTagger, Memorizer
from tasks.kinds.entities.metrics import entity_scores
from tasks.kinds.entities.sentence import Sentence
from tasks.results.scores import EntityScores, RuleResult
from tasks.stage_configs import QualityBar


def score(gold: list[list[str]], predicted: list[list[str]]) -> EntityScores:
    """Strict entity-level scores (seqeval, IOB2) in the contract's shape."""
    s = entity_scores(gold, predicted)
    per_type = {k: round(v.f1, 4) for k, v in sorted(s.per_type.items())}
    return EntityScores(
        precision=s.micro.precision, recall=s.micro.recall, f1=s.micro.f1, macro_f1=s.macro.f1, per_type=per_type
    )


CRF_GRID = [(0.0, 0.01), (0.0, 0.1), (0.1, 0.1)]  # c1, c2: on WNUT-17 dev 0.229, 0.242, 0.188 (docs/entities.md)


def baselines(train: list[Sentence], dev: list[Sentence]) -> dict[str, CRFTagger | Memorizer]:
    """The CRF on word features (the field's classical strong baseline: the gate's), its c1/c2 picked on `dev` as
    the tagger's epoch is, and memorization."""
    fitted = [CRFTagger(CRFConfig(c1=c1, c2=c2)).fit(train) for c1, c2 in CRF_GRID]
    dev_f1 = [score([s.tags for s in dev], crf.predict([s.words for s in dev])).f1 for crf in fitted]
    return {"crf": fitted[dev_f1.index(max(dev_f1))], "memorization": Memorizer().fit(train)}


def entity_rules(bar: QualityBar, f1: float, crf_f1: float) -> list[RuleResult]:
    """The minimum and "beats the CRF by `baseline_margin`", as the classifier's bar has them against TF-IDF."""
    beats = f1 > crf_f1 + 1e-12 and f1 - crf_f1 >= bar.baseline_margin - 1e-12
    text = f"entity F1 {f1:.4f} {'beats' if beats else 'does not beat'} the CRF {crf_f1:.4f}"
    text += f" (+{bar.baseline_margin:.3f} margin)"
    if not bar.baseline_rule:
        rule = RuleResult(name="baseline", passed=True, value="off", reason=f"switched off: {text}")
    else:
        rule = RuleResult(name="baseline", passed=beats, value=f"{f1:.4f} vs {crf_f1:.4f}", reason=text)
    return [minimum("min_f1", "entity F1", f1, bar.min_value, "gate.min_value"), rule]


def samples(words: list[list[str]], gold: list[list[str]], predicted: list[list[str]], n: int) -> list[dict]:
    """A few sentences with their gold and predicted entities, for the card."""
    from models.token_classifier import tags_to_spans

    def spans(ws: list[str], tags: list[str]) -> str:
        return "; ".join(f"{' '.join(ws[a:b])} ({kind})" for a, b, kind in tags_to_spans(tags)) or "-"

    with_entities = [i for i, g in enumerate(gold) if any(t != "O" for t in g)][:n]
    return [
        {"sentence": " ".join(words[i]), "gold": spans(words[i], gold[i]), "predicted": spans(words[i], predicted[i])}
        for i in with_entities
    ]
