"""A generator champion's view of prompts: its answers, its prompt embeddings and the words its tokenizer splits.

Embeddings are the mean-pooled last hidden state of the causal LM over the prompt's tokens (the decoder's own
representation of what it is asked, as the classifier's monitor pools its encoder). Answers are greedy, as the
evaluation generates them; answers a window's rows already carry (served by this version) are used as served.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from models.generator import TextGenerator
from tasks.monitoring.model_view import oov_words_pct


@torch.inference_mode()
def prompt_embeddings(gen: TextGenerator, prompts: list[str], batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden state per prompt (rendered through the chat template, as the model reads it)."""
    tok, out = gen.tokenizer, []
    texts = [gen.render(p) for p in prompts]
    for start in range(0, len(texts), batch_size):
        enc = tok(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=gen.context,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(gen.device)
        hidden = gen.model(**enc, output_hidden_states=True).hidden_states[-1]
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, gen.model.config.hidden_size))


def answers(gen: TextGenerator, df: pd.DataFrame, max_new_tokens: int, version: str | None) -> list[str]:
    """The champion's answer per row: the served `response` where this version gave it, else generated now."""
    served = pd.Series(False, index=df.index)
    if version is not None and {"response", "model_version"} <= set(df.columns):
        served = df["response"].notna() & (df["model_version"].astype(str) == version)
    result = df["response"].where(served, None).tolist() if "response" in df.columns else [None] * len(df)
    todo = [i for i, r in enumerate(result) if r is None]
    if todo:
        chats = [df["chat"].iloc[i] if "chat" in df.columns else df["text"].iloc[i] for i in todo]
        for i, answer in zip(todo, gen.generate(chats, max_new_tokens), strict=True):
            result[i] = answer
    return [str(r) for r in result]


def model_frame(gen: TextGenerator, df: pd.DataFrame, max_new_tokens: int, version: str | None) -> pd.DataFrame:
    """`prompt`, `response`, `prompt_oov_words_pct`, `emb_*` and `reference` (the known answer, or None)."""
    prompts = df["text"].tolist()
    emb = prompt_embeddings(gen, prompts)
    out = pd.DataFrame(emb, columns=[f"emb_{i}" for i in range(emb.shape[1])])
    out.insert(0, "prompt", prompts)
    out.insert(1, "response", answers(gen, df.reset_index(drop=True), max_new_tokens, version))
    out.insert(2, "prompt_oov_words_pct", oov_words_pct(gen.tokenizer, prompts))
    out["reference"] = df["true_label"].to_numpy()
    return out
