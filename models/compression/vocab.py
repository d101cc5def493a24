"""Vocabulary trimming: keep the embeddings of the tokens a corpus uses, and a tokenizer that only knows those.

Why: in a 6-layer, 384-wide encoder the 30,522 x 384 word embeddings are half of the weights, so dropping layers
alone cannot make the graph three times smaller. Texts of the corpus tokenize exactly as before (WordPiece takes the
longest known piece from the left, and every piece the corpus used is kept); every single character and its `##`
form are kept too, so an unseen word still splits into known pieces instead of [UNK]. TextPruner's vocabulary pruner
does the same, but it pins transformers 4, so the tokenizer.json is edited here with the `tokenizers` library's
format (WordPiece vocab, special-token ids in the post-processor and padding).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerFast


def kept_token_ids(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[int]:
    """Sorted old ids to keep: special tokens, single characters (and ##-forms), and every token of `texts`."""
    keep = set(tokenizer.all_special_ids)
    for token, idx in tokenizer.get_vocab().items():
        if len(token.removeprefix("##")) == 1:
            keep.add(idx)
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        keep.update(ids)
    return sorted(keep)


def _remap_tokenizer_json(spec: dict, keep: list[int]) -> dict:
    """tokenizer.json with the WordPiece vocab reduced to `keep` (new id = position in `keep`)."""
    new_id = {old: new for new, old in enumerate(keep)}
    vocab = spec["model"]["vocab"]
    spec["model"]["vocab"] = {
        tok: new_id[old] for tok, old in sorted(vocab.items(), key=lambda kv: kv[1]) if old in new_id
    }
    for added in spec.get("added_tokens", []):
        added["id"] = new_id[added["id"]]
    post = spec.get("post_processor") or {}
    for special in post.get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    for key in ("cls", "sep"):  # BertProcessing keeps [token, id] pairs
        if key in post:
            post[key] = [post[key][0], new_id[post[key][1]]]
    if spec.get("padding"):
        spec["padding"]["pad_id"] = new_id[spec["padding"]["pad_id"]]
    return spec


def trim_vocabulary(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], workdir: Path
) -> tuple[PreTrainedTokenizerFast, int]:
    """Shrink `model`'s word embeddings in place to the tokens of `texts`; returns (new tokenizer, tokens removed)."""
    if not tokenizer.is_fast:
        raise ValueError("trim_vocabulary needs a fast tokenizer (tokenizer.json)")
    keep = kept_token_ids(tokenizer, texts)
    before = model.get_input_embeddings().num_embeddings
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(workdir))
    path = workdir / "tokenizer.json"
    path.write_text(json.dumps(_remap_tokenizer_json(json.loads(path.read_text()), keep), ensure_ascii=False))
    (workdir / "vocab.txt").unlink(missing_ok=True)  # the slow tokenizer's vocab would contradict tokenizer.json
    # the generic fast class would drop token_type_ids from the inputs (and so from the ONNX graph's)
    trimmed = PreTrainedTokenizerFast.from_pretrained(str(workdir), model_input_names=list(tokenizer.model_input_names))
    old = model.get_input_embeddings()
    new = nn.Embedding(len(keep), old.embedding_dim, padding_idx=None)
    new.weight = nn.Parameter(old.weight.data[torch.tensor(keep)].clone())
    model.set_input_embeddings(new)
    model.config.vocab_size = len(keep)
    if model.config.pad_token_id is not None:
        model.config.pad_token_id = trimmed.pad_token_id
    return trimmed, before - len(keep)
