"""The baselines every entity evaluation reports: memorization of training entities, and a CRF on word features."""

from __future__ import annotations

from collections import Counter, defaultdict

import sklearn_crfsuite
from pydantic import BaseModel

from tasks.kinds.entities.sentence import Sentence


class Memorizer:
    """Tags a phrase with the type it most often had in training, if it was an entity more often than not.

    Phrase level, not word level: 'New York' is remembered as one location (the usual memorization baseline for
    emerging entities, Augenstein et al. 2017). Matching is greedy, longest phrase first, case-sensitive.
    """

    def __init__(self) -> None:
        self.phrases: dict[tuple[str, ...], str] = {}
        self.longest = 0

    def fit(self, sentences: list[Sentence]) -> Memorizer:
        typed: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        for s in sentences:
            for start, end, kind in _entities(s.tags):
                typed[tuple(s.words[start:end])][kind] += 1
        self.longest = max((len(p) for p in typed), default=0)
        seen = Counter(
            tuple(s.words[i : i + n])
            for s in sentences
            for n in range(1, self.longest + 1)
            for i in range(len(s.words) - n + 1)
            if tuple(s.words[i : i + n]) in typed
        )
        for phrase, kinds in typed.items():
            kind, count = kinds.most_common(1)[0]
            if count * 2 > seen[phrase]:  # an entity in most of its occurrences
                self.phrases[phrase] = kind
        return self

    def predict(self, words_list: list[list[str]]) -> list[list[str]]:
        return [self._tag(words) for words in words_list]

    def _tag(self, words: list[str]) -> list[str]:
        tags, i = ["O"] * len(words), 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                kind = self.phrases.get(tuple(words[i : i + n]))
                if kind:
                    tags[i : i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        return tags


def _entities(tags: list[str]) -> list[tuple[int, int, str]]:
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            out.append((i, i + 1, tag[2:]))
        elif tag.startswith("I-") and out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1, out[-1][2])
    return out


def _shape(word: str) -> str:
    """Xxxx / dd / x.x: the word's character classes with runs collapsed."""
    out = []
    for c in word:
        k = "X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c
        if not out or out[-1] != k:
            out.append(k)
    return "".join(out)[:8]


def word_features(words: list[str], i: int) -> dict[str, object]:
    """The classical NER features for word i and its neighbours (crfsuite dict format)."""
    w = words[i]
    feats: dict[str, object] = {
        "bias": 1.0, "lower": w.lower(), "suffix3": w[-3:].lower(), "prefix3": w[:3].lower(), "shape": _shape(w),
        "istitle": w.istitle(), "isupper": w.isupper(), "isdigit": w.isdigit(), "len": min(len(w), 10),
        "at": w.startswith("@"), "hash": w.startswith("#"), "url": w.lower().startswith(("http", "www")),
    }  # fmt: skip
    for off in (-2, -1, 1, 2):
        j = i + off
        if 0 <= j < len(words):
            feats |= {
                f"{off}:lower": words[j].lower(),
                f"{off}:istitle": words[j].istitle(),
                f"{off}:shape": _shape(words[j]),
            }
        else:
            feats[f"{off}:edge"] = True
    return feats


class CRFConfig(BaseModel):
    """sklearn-crfsuite's L-BFGS with elastic-net weights; c1/c2 as in its CoNLL tutorial."""

    c1: float = 0.1
    c2: float = 0.1
    max_iterations: int = 100


class CRFTagger:
    """A linear-chain CRF on word features: the field's classical strong NER baseline."""

    def __init__(self, cfg: CRFConfig | None = None) -> None:
        cfg = cfg or CRFConfig()
        self.crf = sklearn_crfsuite.CRF(
            algorithm="lbfgs", c1=cfg.c1, c2=cfg.c2, max_iterations=cfg.max_iterations, all_possible_transitions=True
        )

    def fit(self, sentences: list[Sentence]) -> CRFTagger:
        self.crf.fit([_featurize(s.words) for s in sentences], [s.tags for s in sentences])
        return self

    def predict(self, words_list: list[list[str]]) -> list[list[str]]:
        return [list(t) for t in self.crf.predict([_featurize(w) for w in words_list])]


def _featurize(words: list[str]) -> list[dict[str, object]]:
    return [word_features(words, i) for i in range(len(words))]
