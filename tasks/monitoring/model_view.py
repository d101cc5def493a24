"""The champion's view of a text: class probabilities, pooled embeddings, and the words its tokenizer splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import torch

from models.batching import batched_logits
from models.classifier import TextClassifier


@torch.inference_mode()
def model_outputs(clf: TextClassifier, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and mean-pooled last-layer embeddings, in one forward pass per length-sorted batch."""
    n_labels = len(clf.labels)

    def run_batch(batch: list[str]) -> tuple[np.ndarray, list[bool]]:
        enc = clf.encode(batch)[0].to(clf.device)  # cut as the champion was trained (finetune.truncation)
        out = clf.model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        emb = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)
        probs = torch.softmax(out.logits.float(), dim=-1)
        return torch.cat([probs, emb.float()], dim=1).cpu().numpy(), [False] * len(batch)

    # `batched_logits` fills rows of a float matrix in text order: probabilities and embedding side by side.
    both, _ = batched_logits(texts, run_batch, n_labels + clf.model.config.hidden_size, batch_size)
    return both[:, :n_labels], both[:, n_labels:]


def oov_words_pct(tokenizer, texts: list[str]) -> np.ndarray:
    """Per text, the % of its words the tokenizer splits into pieces or maps to [UNK]."""
    texts = ["" if not isinstance(t, str) else t for t in texts]
    enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    unk = tokenizer.unk_token_id
    values = np.zeros(len(texts))
    for i in range(len(texts)):
        pieces: Counter = Counter()
        unknown = set()
        for word, token in zip(enc.word_ids(i), enc["input_ids"][i], strict=True):
            if word is not None:
                pieces[word] += 1
                if token == unk:
                    unknown.add(word)
        if pieces:
            values[i] = 100.0 * sum(1 for w, n in pieces.items() if n > 1 or w in unknown) / len(pieces)
    return values


def with_model_outputs(clf: TextClassifier, df: pd.DataFrame, batch_size: int, version: str | None) -> pd.DataFrame:
    """Predicted label, confidence, tokenizer and embedding columns; logged predictions of this version are kept.

    `oov_words_pct` is here, not among the input descriptors, because its reference must be text the tokenizer
    never saw: on its own training text a tokenizer keeps every word whole (0% on every row).
    """
    probs, emb = model_outputs(clf, df["text"].tolist(), batch_size)
    out = pd.DataFrame(emb, columns=[f"emb_{i}" for i in range(emb.shape[1])])
    out.insert(0, "predicted_label", [clf.labels[i] for i in probs.argmax(axis=1)])
    out.insert(1, "confidence", probs.max(axis=1).astype(float))
    out.insert(2, "oov_words_pct", oov_words_pct(clf.tokenizer, df["text"].tolist()))
    if version is not None and {"label", "score", "model_version"} <= set(df.columns):
        served = (df["model_version"].astype(str) == version).to_numpy()
        out.loc[served, "predicted_label"] = df.loc[served, "label"].to_numpy()
        out.loc[served, "confidence"] = df.loc[served, "score"].astype(float).to_numpy()
    out["true_label"] = df["true_label"].to_numpy()
    return out
