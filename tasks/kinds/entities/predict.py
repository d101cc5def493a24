"""Tag words and extract entities (type, character offsets, text, score), from PyTorch or ONNX Runtime alike.

The model is only a `logits(input_ids, attention_mask) -> [batch, length, labels]` function, so the windowing,
decoding and entity grouping here are the same for the fp32 model, the int8 graph, the pyfunc and `/predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tasks.kinds.entities.schemes import to_iob2
from tasks.kinds.entities.spans import tags_to_spans, words_of
from tasks.kinds.entities.train import read_meta
from tasks.kinds.entities.windows import owners, windows

Logits = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
        """The saved model in `model_dir` (train.py's output), run by PyTorch, or by ONNX Runtime from `onnx_path`."""
        from transformers import AutoTokenizer

        meta = read_meta(model_dir)
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
        order = sorted(range(len(wins)), key=lambda k: len(wins[k].input_ids))
        probs: list[np.ndarray | None] = [None] * len(wins)
        pad = self.tokenizer.pad_token_id or 0
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            width = max(len(wins[k].input_ids) for k in batch)
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, k in enumerate(batch):
                ids[row, : len(wins[k].input_ids)] = wins[k].input_ids
                mask[row, : len(wins[k].input_ids)] = 1
            for row, p in zip(batch, _softmax(self.logits(ids, mask)), strict=True):
                probs[row] = p
        owner = owners(wins, [len(s) for s in sentences])
        return [
            np.stack([probs[k][pos] for k, pos in row]) if row else np.zeros((0, len(self.labels))) for row in owner
        ]

    def tag(self, sentences: list[list[str]]) -> list[tuple[list[str], list[float]]]:
        """IOB2 tags (an I-X continuing nothing is read as B-X) and each tag's probability, per sentence."""
        out = []
        for p in self.probabilities(sentences):
            best = p.argmax(-1) if len(p) else np.zeros(0, dtype=int)
            tags = to_iob2([self.labels[i] for i in best], "IOB2", True, str)
            out.append((tags, [float(p[i, j]) for i, j in enumerate(best)]))
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
                score = float(np.mean(scores[first:last]))
                found.append(Entity(type=kind, start=start, end=end, text=text[start:end], score=round(score, 4)))
            out.append(found)
        return out
