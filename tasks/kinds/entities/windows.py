"""Words -> sub-word windows the model can take, and back.

A sentence longer than the model's length is cut into windows that overlap by `overlap` sub-tokens; it is never
truncated silently. Each word is read from the window where it has the most context on both sides. Labels sit on a
word's first sub-token; its other sub-tokens and the special tokens carry -100 (ignored by the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100


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


def encode(per_word: list[list[int]], sentence: int, span: tuple[int, int], budget: int, ends) -> Window:
    head, tail = ends
    ids, first = list(head), []
    for word in per_word[span[0] : span[1]]:
        first.append(len(ids))
        ids.extend(word[:budget])
    return Window(sentence, span[0], span[1], ids + tail, first)


def windows(tokenizer, sentences: list[list[str]], max_length: int, overlap: int) -> list[Window]:
    """Every window of every sentence, in order."""
    ends = specials(tokenizer)
    budget = max_length - len(ends[0]) - len(ends[1])
    out = []
    for i, per_word in enumerate(subwords(tokenizer, sentences)):
        for span in plan([len(w) for w in per_word], budget, overlap):
            out.append(encode(per_word, i, span, budget, ends))
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


def labelled(win: Window, label_ids: list[int]) -> dict[str, list[int]]:
    """Trainer features for one window: first sub-token of each word labelled, the rest IGNORE."""
    labels = [IGNORE] * len(win.input_ids)
    for j, pos in enumerate(win.first):
        labels[pos] = label_ids[win.start + j]
    return {"input_ids": win.input_ids, "attention_mask": [1] * len(win.input_ids), "labels": labels}
