"""Question + context → model windows: document-stride windows with offset mapping, as
AutoModelForQuestionAnswering expects them.

Long contexts (COVID-QA articles run to 60k characters, ~25 windows each) would make training windows mostly
answer-less; training keeps every window that holds the answer plus a seeded sample of the others, so a CPU epoch
stays affordable while the model still learns to point at [CLS] where there is no answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from tasks.kinds.answers.reader import QAExample

# What a runner (PyTorch or ONNX Runtime) takes and gives: a batch of window arrays -> (start_logits, end_logits).
Runner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class WindowConfig(BaseModel):
    max_length: int = Field(384, ge=32, description="tokens per window, question included")
    stride: int = Field(128, ge=0, description="tokens shared by consecutive windows")
    max_question_tokens: int = Field(64, ge=4, description="longer questions are cut to this many tokens")
    negatives_per_question: float = Field(1.0, ge=0, description="answer-less windows kept per question (training)")
    batch: int = Field(64, ge=1, description="examples tokenized per call")


def _tokenize(tokenizer, examples: Sequence[QAExample], cfg: WindowConfig):
    questions = [_cut_question(tokenizer, ex.question.strip(), cfg.max_question_tokens) for ex in examples]
    side = tokenizer.padding_side == "right"  # question first when padding right (BERT-like), else swapped
    return tokenizer(
        questions if side else [ex.context for ex in examples],
        [ex.context for ex in examples] if side else questions,
        truncation="only_second" if side else "only_first",
        max_length=cfg.max_length,
        stride=cfg.stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def _cut_question(tokenizer, question: str, limit: int) -> str:
    ids = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return question if len(ids) <= limit else question[: ids[limit - 1][1]]


def _context_range(enc, i: int, context_id: int) -> tuple[int, int]:
    seq = enc.sequence_ids(i)
    first = seq.index(context_id)
    last = len(seq) - 1 - seq[::-1].index(context_id)
    return first, last


def _span(enc, i: int, answer_start: int, answer_end: int, context_id: int) -> tuple[int, int] | None:
    """Token (start, end) of the answer inside window i, or None when the window does not hold all of it."""
    first, last = _context_range(enc, i, context_id)
    offsets = enc["offset_mapping"][i]
    if offsets[first][0] > answer_start or offsets[last][1] < answer_end:
        return None
    s = first
    while s <= last and offsets[s][1] <= answer_start:
        s += 1
    e = last
    while e >= first and offsets[e][0] >= answer_end:
        e -= 1
    return s, e


def train_features(tokenizer, examples: Sequence[QAExample], cfg: WindowConfig, seed: int = 0) -> dict[str, list]:
    """Windows with start/end labels ([CLS] = 0 where the window holds no answer); see the module note on sampling."""
    rng = random.Random(seed)
    context_id = 1 if tokenizer.padding_side == "right" else 0
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "start_positions": [], "end_positions": []}
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = []
    for lo in range(0, len(examples), cfg.batch):
        chunk = examples[lo : lo + cfg.batch]
        enc = _tokenize(tokenizer, chunk, cfg)
        by_example: dict[int, tuple[list, list]] = {}
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"]):
            gold = next((a for a in chunk[ex_i].answers if a.start >= 0), None)
            span = None if gold is None else _span(enc, i, gold.start, gold.start + len(gold.text), context_id)
            pos, neg = by_example.setdefault(ex_i, ([], []))
            (pos if span else neg).append((i, span or (0, 0)))
        for ex_i, (pos, neg) in by_example.items():
            if not pos and chunk[ex_i].answers:
                continue  # answer cut by truncation in every window (too long for max_length): nothing to learn
            n_neg = int(cfg.negatives_per_question) + (rng.random() < cfg.negatives_per_question % 1)
            for i, (s, e) in pos + rng.sample(neg, min(n_neg, len(neg))):
                for key in out:
                    if key in enc:
                        out[key].append(enc[key][i])
                out["start_positions"].append(s)
                out["end_positions"].append(e)
    return out


def eval_features(tokenizer, examples: Sequence[QAExample], cfg: WindowConfig) -> dict[str, list]:
    """Every window of every example, with `example_index` and an offset map that is None outside the context."""
    context_id = 1 if tokenizer.padding_side == "right" else 0
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "offset_mapping": [], "example_index": []}
    if "token_type_ids" in tokenizer.model_input_names:
        out["token_type_ids"] = []
    for lo in range(0, len(examples), cfg.batch):
        enc = _tokenize(tokenizer, examples[lo : lo + cfg.batch], cfg)
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"]):
            seq = enc.sequence_ids(i)
            offsets = [o if seq[k] == context_id else None for k, o in enumerate(enc["offset_mapping"][i])]
            out["offset_mapping"].append(offsets)
            out["example_index"].append(lo + ex_i)
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in out:
                    out[key].append(enc[key][i])
    return out
