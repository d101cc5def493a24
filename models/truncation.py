"""How a text longer than the model's window is cut: the same rule in fine-tuning and at every prediction.

`head` keeps the first tokens (the tokenizer's own truncation). `head_tail` keeps the first quarter of the window
and the end of the text: a review's verdict or a ticket's request is often in its last sentences, and on IMDb
head 128 + tail 382 beat head-only 512 (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification").
The rule travels in the saved model's `config.json` (`zero2one_truncation`), so the pyfunc, ONNX serving and
evaluation cut exactly as training did: with `head_tail` at the training window (`finetune.max_length`, which may be
shorter than the model's positions); with `head`, as before, at the model's full window.

Pure Python: `OnnxClassifier` serves without torch or transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

CONFIG_KEY = "zero2one_truncation"
HEAD_SHARE = 0.25  # 128 of 512 tokens in the paper


@dataclass(frozen=True)
class Truncation:
    """`strategy` with the window it was trained with; `head` tokens from the start (special tokens included)."""

    strategy: str
    max_length: int
    head: int

    @classmethod
    def for_window(cls, strategy: str, max_length: int) -> Truncation:
        return cls(strategy, max_length, max(1, round(max_length * HEAD_SHARE)))

    @classmethod
    def from_config(cls, config) -> Truncation | None:
        """The rule a saved model carries (a transformers config or the parsed config.json), or None."""
        spec = config.get(CONFIG_KEY) if isinstance(config, dict) else getattr(config, CONFIG_KEY, None)
        return cls(**spec) if spec else None

    def to_config(self) -> dict:
        return asdict(self)

    @property
    def custom(self) -> bool:
        """Whether the cut is ours: `head` is the tokenizer's own truncation (which keeps the closing [SEP])."""
        return self.strategy == "head_tail"

    def cut(self, ids: Sequence) -> list:
        """`ids` (special tokens included) as the model sees them: unchanged when they fit, else head + tail."""
        ids = list(ids)
        if len(ids) <= self.max_length:
            return ids
        return ids[: self.head] + ids[len(ids) - (self.max_length - self.head) :]

    def cut_encoding(self, columns: dict[str, list[list[int]]]) -> tuple[dict[str, list[list[int]]], list[bool]]:
        """Every per-token column (input_ids, attention_mask, ...) cut the same way, and which texts were cut."""
        truncated = [len(ids) > self.max_length for ids in columns["input_ids"]]
        return {name: [self.cut(row) for row in rows] for name, rows in columns.items()}, truncated
