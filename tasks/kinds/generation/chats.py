"""Chats as the generative track handles them: a prompt's key and text, its tokens with answer-only labels, and the
context-length policy.

Shared by instruction data (duplicate checks), instruction tuning (`tasks/kinds/generation/sft.py`: tokens, length
policy), the
generation evaluation (`tasks/kinds/generation/evaluate.py`: perplexity, retrieval) and the generation gate, so none
of them imports another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from core.errors import PipelineInputError
from tasks.results.common import Messages

if TYPE_CHECKING:
    import datasets

IGNORE = -100  # the label PyTorch's cross-entropy skips


def prompt_key(messages: Messages) -> str:
    """What identifies a sample for duplicate checks: everything before the answer."""
    return json.dumps(messages[:-1], sort_keys=True, ensure_ascii=False)


def prompt_text(messages: Messages) -> str:
    """Everything before the answer, as plain text (what retrieval compares)."""
    return "\n".join(m["content"] for m in messages[:-1])


def encode_chat(tok, messages: Messages, max_length: int | None = None) -> dict[str, list[int]]:
    """Token ids of a rendered chat, and labels that are -100 everywhere but on the last answer.

    The prompt is rendered with the generation prompt (`...<|assistant|>\\n`) exactly as at inference, and the
    answer is the rest of the full rendering; both are tokenized separately so no token straddles the boundary.
    """
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise PipelineInputError(
            "the chat template renders a prompt differently alone and with its answer; it cannot mark the answer "
            f"tokens. Prompt: {prompt[-80:]!r}; full chat: {full[-120:]!r}"
        )
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tok(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids, labels = prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def fit_to_context(
    split: datasets.Dataset,
    n_tokens: Callable[[Messages], int],
    max_length: int,
    policy: Literal["error", "truncate", "drop"],
    split_name: str,
) -> tuple[datasets.Dataset, int]:
    """Apply the policy for chats longer than `max_length` tokens; returns what stays and how many were too long.

    `truncate` keeps them (the encoder cuts the tokens at `max_length`, so the answer's end may be lost); `drop`
    removes them; `error` names the first one. Runs before training, so a bad sample costs no compute.
    """
    lengths = [n_tokens(m) for m in split["messages"]]
    too_long = [i for i, n in enumerate(lengths) if n > max_length]
    if not too_long:
        return split, 0
    if policy == "error":
        i = too_long[0]
        row = split[i]
        raise PipelineInputError(
            f"{row['_file']}, line {row['_line']}, field 'messages': {lengths[i]} tokens, longer than the context of "
            f"{max_length} ({split_name}; value {row['messages'][-2]['content'][:60]!r}...; {len(too_long)} such "
            "rows). Shorten them, raise sft.max_length, or set sft.on_too_long=truncate or drop."
        )
    if policy == "drop":
        bad = set(too_long)
        split = split.select([i for i in range(len(split)) if i not in bad])
    return split, len(too_long)
