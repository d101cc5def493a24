"""`detect_entity_drift`: the drift computation on one window of an entity tagger's traffic, like `detect.py`.

Each text becomes one row of descriptors (`tasks/kinds/entities/monitor.py`): entities found, entities of each type,
the share of words the champion never saw in training, and the mean confidence of its tags. The window's rows are
compared with the champion's own view of its held-out validation + test sentences (held out: on its training
sentences a model is more confident and knows every word, a gap that would fire on every window), one Evidently
`ValueDrift` test per column; the verdict is the classifier's (`policy.decide`). Served texts have no gold entities
yet, so there is no quality signal.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd

from core.workspace import Workspace, join
from tasks.kinds.entities.monitor import descriptor_rows, vocabulary
from tasks.kinds.entities.sentence import Sentence
from tasks.monitoring.config import MonitorConfig, sample_rows
from tasks.monitoring.policy import Accuracy, decide, too_small
from tasks.monitoring.reports import ReportAbout, descriptors_report, heading
from tasks.monitoring.results import DriftReport
from tasks.monitoring.signals import signals_from
from tasks.results.registry import Champion


def _sentences(data_uri: str, splits: tuple[str, ...]) -> list[Sentence]:
    dd = datasets.load_from_disk(join(data_uri, "splits"))
    return [Sentence(words=w, tags=t) for s in splits for w, t in zip(dd[s]["words"], dd[s]["tags"], strict=True)]


def _rows(tagger, words: list[list[str]], types: list[str], vocab: set[str]) -> pd.DataFrame:
    tags, scores = zip(*tagger.tag(words), strict=True) if words else ((), ())
    return pd.DataFrame(descriptor_rows(list(zip(words, tags, scores, strict=True)), types, vocab))


def detect_for_champion(
    cfg: MonitorConfig, champion: Champion, window: pd.DataFrame, out_dir: Path, about: ReportAbout, ws: Workspace
) -> DriftReport:
    """Descriptor drift of a registered tagger's window (`ModelKind.detect_drift`); the report is `model.html`."""
    from models.token_classifier import Tagger, words_of

    policy = cfg.policy
    if small := too_small(policy, len(window), 0):
        return small
    out_dir.mkdir(parents=True, exist_ok=True)
    tagger = Tagger.load(champion.model_dir)
    types = sorted({label[2:] for label in tagger.labels if label != "O"})
    vocab = vocabulary(_sentences(champion.data_uri, ("train",)))
    held_out = _sentences(champion.data_uri, ("validation", "test"))
    ref_words = [s.words for s in sample_rows(pd.DataFrame({"s": held_out}), cfg.model_rows, cfg.seed)["s"]]
    texts = sample_rows(window, cfg.model_rows, cfg.seed)["text"].astype(str)
    cur_words = [[t[a:b] for a, b in words_of(t)] for t in texts]
    ref, cur = _rows(tagger, ref_words, types, vocab), _rows(tagger, [w for w in cur_words if w], types, vocab)
    what = "the champion's tags on its held-out validation + test sentences"
    title, text = heading(about, "Entity drift", what, len(held_out), len(ref), len(cur), len(window))
    snapshot = descriptors_report(cfg, ref, cur, title, text)
    snapshot.save_html(str(out_dir / "model.html"))
    signals = signals_from(snapshot, {c: (c, "model") for c in ref.columns if c != "words"})
    status, reasons, share = decide(policy, signals, Accuracy(skipped="served texts carry no gold entities"))
    return DriftReport(
        status=status,
        reasons=reasons,
        window_rows=len(window),
        labeled_rows=0,
        signals=signals,
        drift_share=share,
        samples={"reference_model": len(ref), "current_model": len(cur)},
        skipped=["quality: served texts carry no gold entities"],
        reports=["model.html"],
    )
