"""A saved token classifier at inference: words -> sub-word windows -> logits -> IOB2 tags -> entities with offsets.

Here and not in tasks/ because a registered model's pyfunc ships `models/` as code: this module imports only numpy
and pydantic at the top; transformers, torch and onnxruntime load when a tagger is opened. The model is only a
`logits(input_ids, attention_mask)` function, so PyTorch fp32 and the int8 graph are read the same way.

A sentence longer than the model is cut into windows that share at least one word (more, up to `overlap` sub-tokens);
it is never truncated silently. Each word is read at its first sub-token, in the window where it has the most context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

META = "entities.json"  # beside the saved model: labels, max length, overlap
# Words of raw text: runs of word characters (joined by ' or -), or one other non-space character.
WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")
Logits = Callable[[np.ndarray, np.ndarray], np.ndarray]


def words_of(text: str, cuts: set[int] = frozenset()) -> list[tuple[int, int]]:
    """Character spans of the words in `text`, split further at every offset in `cuts`."""
    spans = []
    for m in WORD.finditer(text):
        start = m.start()
        for cut in sorted(c for c in cuts if m.start() < c < m.end()):
            spans.append((start, cut))
            start = cut
        spans.append((start, m.end()))
    return spans


def tags_to_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """IOB2 tags -> (first word, last word + 1, type); a stray I-X starts an entity."""
    found: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix == "I" and found and found[-1][1] == i and found[-1][2] == kind:
            found[-1] = (found[-1][0], i + 1, kind)
        else:
            found.append((i, i + 1, kind))
    return found


def repair(tags: list[str]) -> list[str]:
    """An I-X that continues no X becomes B-X: what the model meant, and what strict IOB2 scoring can count."""
    out: list[str] = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


@dataclass
class Window:
    """Words [start, end) of sentence `sentence`, encoded with special tokens; `first[k]` is word start+k's position."""

    sentence: int
    start: int
    end: int
    input_ids: list[int]
    first: list[int]


def subwords(tokenizer, sentences: list[list[str]]) -> list[list[list[int]]]:
    """Sub-token ids per word per sentence (a word the tokenizer drops, e.g. a lone control character, gets UNK)."""
    enc = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    out = []
    for i, words in enumerate(sentences):
        per_word: list[list[int]] = [[] for _ in words]
        for pos, w in enumerate(enc.word_ids(i)):
            if w is not None:
                per_word[w].append(enc["input_ids"][i][pos])
        out.append([ids or [tokenizer.unk_token_id] for ids in per_word])
    return out


def plan(counts: list[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Word ranges whose sub-token counts fit `budget`; consecutive ranges share one word, more up to `overlap`.

    A single word longer than the budget gets a window of its own (its sub-tokens are cut in `encode`; only its first
    sub-token carries the label, so no label is lost).
    """
    spans, start, n = [], 0, len(counts)
    while start < n:
        end, used = start, 0
        while end < n and (end == start or used + counts[end] <= budget):
            used += counts[end]
            end += 1
        spans.append((start, end))
        if end == n:
            break
        back, shared = end, 0
        while back - 1 > start and (back == end or shared + counts[back - 1] <= overlap):
            back -= 1  # share at least one word, then as many as fit `overlap`
            shared += counts[back]
        start = back
    return spans


def specials(tokenizer) -> tuple[list[int], list[int]]:
    """The ids around a single sequence: [CLS] ... [SEP] for BERT-likes, <s> ... </s> for RoBERTa-likes."""
    head = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    tail = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return ([head] if head is not None else []), ([tail] if tail is not None else [])


def windows(tokenizer, sentences: list[list[str]], max_length: int, overlap: int) -> list[Window]:
    """Every window of every sentence, in order."""
    head, tail = specials(tokenizer)
    budget = max_length - len(head) - len(tail)
    out = []
    for i, per_word in enumerate(subwords(tokenizer, sentences)):
        for start, end in plan([len(w) for w in per_word], budget, overlap):
            ids, first = list(head), []
            for word in per_word[start:end]:
                first.append(len(ids))
                ids.extend(word[:budget])
            out.append(Window(i, start, end, ids + tail, first))
    return out


def owners(wins: list[Window], lengths: list[int]) -> list[list[tuple[int, int]]]:
    """For each word: (window index, position) of the window that gives it the most context on both sides."""
    best: list[list[tuple[int, int, int]]] = [[(-1, -1, -1)] * n for n in lengths]
    for k, win in enumerate(wins):
        for j, pos in enumerate(win.first):
            word = win.start + j
            context = min(j, win.end - win.start - 1 - j)
            if context > best[win.sentence][word][0]:
                best[win.sentence][word] = (context, k, pos)
    return [[(k, pos) for _, k, pos in row] for row in best]


class Entity(BaseModel):
    """One entity in a text: what `/predict` and the pyfunc return."""

    type: str
    start: int  # character offsets into the text, end exclusive
    end: int
    text: str
    score: float  # mean probability of the entity's word tags


def torch_logits(model) -> Logits:
    import torch

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

    return run


def ort_logits(session) -> Logits:
    names = {i.name for i in session.get_inputs()}

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        return session.run(["logits"], feed)[0]

    return run


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Tagger:
    """Words -> IOB2 tags with probabilities; texts -> entities."""

    def __init__(self, tokenizer, labels: list[str], logits: Logits, max_length: int, overlap: int, batch_size=32):
        self.tokenizer, self.labels, self.logits = tokenizer, labels, logits
        self.max_length, self.overlap, self.batch_size = max_length, overlap, batch_size

    @classmethod
    def load(cls, model_dir: str | Path, onnx_path: str | Path | None = None, threads: int = 2) -> Tagger:
        """`model_dir` (weights, tokenizer, META), run by PyTorch, or by ONNX Runtime from `onnx_path`."""
        from transformers import AutoTokenizer

        meta = json.loads(Path(model_dir, META).read_text())
        if onnx_path is None:
            import torch
            from transformers import AutoModelForTokenClassification

            torch.set_num_threads(threads)
            run = torch_logits(AutoModelForTokenClassification.from_pretrained(str(model_dir)).eval())
        else:
            from models.ort_sessions import ort_session

            run = ort_logits(ort_session(onnx_path, threads))
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        return cls(tokenizer, meta["labels"], run, meta["max_length"], meta["overlap"])

    def probabilities(self, sentences: list[list[str]]) -> list[np.ndarray]:
        """Per sentence, a [words, labels] array of probabilities read at each word's first sub-token."""
        wins = windows(self.tokenizer, sentences, self.max_length, self.overlap)
        order = sorted(range(len(wins)), key=lambda k: len(wins[k].input_ids))  # batches of like lengths pad little
        probs: list[np.ndarray] = [np.zeros(0)] * len(wins)
        pad = self.tokenizer.pad_token_id or 0
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            width = max(len(wins[k].input_ids) for k in batch)
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, k in enumerate(batch):
                ids[row, : len(wins[k].input_ids)] = wins[k].input_ids
                mask[row, : len(wins[k].input_ids)] = 1
            for k, p in zip(batch, _softmax(self.logits(ids, mask)), strict=True):
                probs[k] = p
        owner = owners(wins, [len(s) for s in sentences])
        empty = np.zeros((0, len(self.labels)))
        return [np.stack([probs[k][pos] for k, pos in row]) if row else empty for row in owner]

    def tag(self, sentences: list[list[str]]) -> list[tuple[list[str], list[float]]]:
        """IOB2 tags (an I-X continuing nothing is read as B-X) and each tag's probability, per sentence."""
        out = []
        for p in self.probabilities(sentences):
            best = p.argmax(-1) if len(p) else np.zeros(0, dtype=int)
            out.append((repair([self.labels[i] for i in best]), [float(p[i, j]) for i, j in enumerate(best)]))
        return out

    def entities(self, texts: list[str]) -> list[list[Entity]]:
        """Entities with type, character offsets, text and score, per text."""
        offsets = [words_of(t) for t in texts]
        tagged = self.tag([[t[s:e] for s, e in offs] for t, offs in zip(texts, offsets, strict=True)])
        out = []
        for text, offs, (tags, scores) in zip(texts, offsets, tagged, strict=True):
            found = []
            for first, last, kind in tags_to_spans(tags):
                start, end = offs[first][0], offs[last - 1][1]
                score = round(float(np.mean(scores[first:last])), 4)
                found.append(Entity(type=kind, start=start, end=end, text=text[start:end], score=score))
            out.append(found)
        return out


class EntityTaggerPyfunc:
    """MLflow pyfunc body: texts in (a `text` column or a list), one row per text out with its `entities` (a list of
    {type, start, end, text, score}). Artifacts: `model` (the saved folder) and, when it passed parity, `onnx`.
    Subclass `mlflow.pyfunc.PythonModel` where it is registered; kept plain here so this module needs no mlflow."""

    def load_context(self, context) -> None:
        self.tagger = Tagger.load(context.artifacts["model"], context.artifacts.get("onnx"))

    def predict(self, context, model_input, params=None):
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text" if "text" in model_input.columns else model_input.columns[0]].astype(str)
        else:
            texts = [str(t) for t in model_input]
        found = self.tagger.entities(list(texts))
        return pd.DataFrame({"entities": [[e.model_dump() for e in row] for row in found]})
