"""Exact match and F1 as the field reports them: SQuAD v1.1's official normalisation, and CMRC 2018's
character-level scores for Chinese.

Written out because neither official script is a library: `evaluate`'s squad metric needs a hub download at run
time, and CMRC 2018 ships only a standalone script (ymcui/cmrc2018 `squad-style-data/cmrc2018_evaluate.py`), whose
logic is copied here function for function.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Literal

Scoring = Literal["squad", "cmrc"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
# CMRC 2018's list, kept as it is (its "……" entry is two characters and so never matches a single one).
_CMRC_SP = {"-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”", "；", "’",
            "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"}  # fmt: skip
_CJK = re.compile(r"[\u4e00-\u9fa5]")
# nltk.word_tokenize in the CMRC script; for the runs of non-Chinese text inside answers this regex splits the same
# way on words, numbers and punctuation (word_tokenize needs punkt data fetched at run time; we fetch nothing).
_WORDS = re.compile(r"\w+|[^\w\s]")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1: lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_em(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Token F1 after normalisation; an empty gold (no answer) scores 1 only for an empty prediction."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def mixed_segmentation(text: str, rm_punc: bool = False) -> list[str]:
    """CMRC 2018: every Chinese character (and listed punctuation) is a token; other runs split into words."""
    out, run = [], ""
    for ch in str(text).lower().strip():
        if rm_punc and ch in _CMRC_SP:
            continue
        if _CJK.search(ch) or ch in _CMRC_SP:
            out.extend(_WORDS.findall(run))
            run = ""
            out.append(ch)
        else:
            run += ch
    out.extend(_WORDS.findall(run))
    return out


def remove_punctuation(text: str) -> str:
    return "".join(ch for ch in str(text).lower().strip() if ch not in _CMRC_SP)


def _lcs_len(a: list[str], b: list[str]) -> int:
    """Longest common contiguous run (the CMRC script's find_lcs)."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(prediction: str, gold: str) -> float:
    ref, pred = mixed_segmentation(gold, rm_punc=True), mixed_segmentation(prediction, rm_punc=True)
    if not ref and not pred:
        return 1.0
    lcs = _lcs_len(ref, pred)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def cmrc_em(prediction: str, gold: str) -> float:
    return float(remove_punctuation(prediction) == remove_punctuation(gold))


_FUNCS = {"squad": (squad_em, squad_f1), "cmrc": (cmrc_em, cmrc_f1)}


def score_one(prediction: str, golds: Iterable[str], scoring: Scoring = "squad") -> tuple[float, float]:
    """(EM, F1) of one prediction: the max over its gold answers; no golds means "no answer" is right."""
    em_fn, f1_fn = _FUNCS[scoring]
    golds = list(golds) or [""]
    return max(em_fn(prediction, g) for g in golds), max(f1_fn(prediction, g) for g in golds)


def score(predictions: Mapping[str, str], golds: Mapping[str, list[str]], scoring: Scoring = "squad") -> dict:
    """Corpus EM and F1 in percent over every question in `golds` (a missing prediction counts as empty)."""
    if not golds:
        raise ValueError("score: no gold questions")
    pairs = [score_one(predictions.get(qid, ""), answers, scoring) for qid, answers in golds.items()]
    n = len(pairs)
    return {"exact_match": 100 * sum(p[0] for p in pairs) / n, "f1": 100 * sum(p[1] for p in pairs) / n, "n": n}
