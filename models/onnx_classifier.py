"""`OnnxClassifier`: `TextClassifier`'s interface on ONNX Runtime, without PyTorch.

Serving an ONNX graph should not pull in a 700 MB framework, so this module imports neither
torch nor transformers: the tokenizer is the model directory's `tokenizer.json` read by the
`tokenizers` library, and labels and lengths come from its `config.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from models.batching import batched_logits, softmax
from models.ort_sessions import ort_session
from models.truncation import Truncation


def load_tokenizer(model_dir: str | Path, max_length: int) -> Tokenizer:
    """The fast tokenizer of a saved HF model, set up as `TextClassifier` calls it: truncate, pad to the longest."""
    model_dir = Path(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pad_token = "[PAD]"
    tok_config = model_dir / "tokenizer_config.json"
    if tok_config.exists():
        pad = json.loads(tok_config.read_text()).get("pad_token") or pad_token
        pad_token = pad["content"] if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"{model_dir}/tokenizer.json has no padding token '{pad_token}'")
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


class OnnxClassifier:
    """An ONNX classifier graph plus the saved HF model directory it was exported from (tokenizer, labels)."""

    def __init__(
        self,
        onnx_path: str | Path,
        model_dir: str | Path,
        max_length: int | None = None,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        spin: bool = False,
    ):
        config = json.loads(Path(model_dir, "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        self.truncation = Truncation.from_config(config)  # head_tail: cut as fine-tuning did (models/truncation.py)
        if self.truncation and not self.truncation.custom:
            self.truncation = None
        self.max_length = max_length or (
            self.truncation.max_length if self.truncation else config["max_position_embeddings"]
        )
        if self.truncation:
            self.truncation = Truncation.for_window(self.truncation.strategy, self.max_length)
        self.tokenizer = load_tokenizer(model_dir, self.max_length)
        if self.truncation:
            self.tokenizer.no_truncation()  # whole texts, then `_encode_head_tail` cuts them
        self.session = ort_session(onnx_path, threads, spin, providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for `texts` (int64, padded to the longest text)."""
        return self._encode(texts)[0]

    def _encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """The graph's inputs, and which texts were cut to the model's window."""
        if self.truncation:
            return self._encode_head_tail(texts)
        encodings = self.tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feeds = {name: np.asarray(columns[name], dtype=np.int64) for name in self.input_names}
        return feeds, [bool(e.overflowing) for e in encodings]

    def _encode_head_tail(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Whole texts, cut to head + tail as `TextClassifier` and fine-tuning cut them, padded to the longest."""
        encodings = self.tokenizer.encode_batch(list(texts))  # padded, not truncated: masks mark the real tokens
        real = [sum(e.attention_mask) for e in encodings]
        columns = {"input_ids": [e.ids[:n] for e, n in zip(encodings, real, strict=True)]}
        columns["token_type_ids"] = [e.type_ids[:n] for e, n in zip(encodings, real, strict=True)]
        columns, truncated = self.truncation.cut_encoding(columns)
        width = max(len(ids) for ids in columns["input_ids"])
        pad = self.tokenizer.padding["pad_id"]
        feeds = {
            "input_ids": [ids + [pad] * (width - len(ids)) for ids in columns["input_ids"]],
            "attention_mask": [[1] * len(ids) + [0] * (width - len(ids)) for ids in columns["input_ids"]],
            "token_type_ids": [ids + [0] * (width - len(ids)) for ids in columns["token_type_ids"]],
        }
        return {name: np.asarray(feeds[name], dtype=np.int64) for name in self.input_names}, truncated

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for already encoded inputs."""
        return self.session.run(["logits"], {name: feeds[name] for name in self.input_names})[0]

    def _run_batch(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        feeds, truncated = self._encode(texts)
        return self.run(feeds), truncated

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Logits for `texts`, in length-sorted batches (see `batched_logits`)."""
        return batched_logits(texts, self._run_batch, len(self.labels), batch_size)[0]

    def classify(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, truncated): which texts were longer than the model's window and cut to it."""
        logits, truncated = batched_logits(texts, self._run_batch, len(self.labels), batch_size)
        return softmax(logits), truncated

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return softmax(self.logits(texts, batch_size))

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts, batch_size).argmax(axis=1)]
