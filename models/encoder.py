"""BERT-style encoders: the shape as a typed config, and builders for the two heads we train.

Builders only build. Training lives in `tasks/`; this module never touches data.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    PreTrainedModel,
)


class EncoderShape(BaseModel):
    """The size of a from-scratch encoder. Defaults are the `tiny` preset (~1.3M parameters)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, gt=0, description="Width of every layer.")
    num_layers: int = Field(4, gt=0, description="Transformer blocks.")
    num_heads: int = Field(2, gt=0, description="Attention heads; must divide hidden_size.")
    intermediate_size: int = Field(512, gt=0, description="Width of the feed-forward block.")
    max_length: int = Field(64, gt=8, description="Longest sequence in tokens (position embeddings).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    def to_bert_config(self, vocab_size: int, **extra) -> BertConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_length,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            **extra,
        )


def build_masked_lm(shape: EncoderShape, vocab_size: int, pad_token_id: int) -> BertForMaskedLM:
    """A randomly initialised BERT with its masked-LM head, for pretraining from scratch."""
    return BertForMaskedLM(shape.to_bert_config(vocab_size, pad_token_id=pad_token_id))


def load_masked_lm(checkpoint: str) -> PreTrainedModel:
    """Continue pretraining from a local directory or a hub name."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(checkpoint)


# What a classifier built on a masked-LM checkpoint is expected to lack (a new head, maybe a pooler) and to leave
# unused (the MLM head). transformers 5 prints a 20-line "LOAD REPORT" table for these on every fine-tune;
# only keys outside these would be news.
_NEW_HEAD = ("classifier.", "pooler.", "score.", "pre_classifier.")
_MLM_HEAD = ("cls.", "lm_head.", "predictions.", "vocab_")


class _ExpectedHeadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    quiet = _ExpectedHeadReport()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def build_classifier(encoder: str, labels: list[str]) -> PreTrainedModel:
    """A sequence classifier on top of a pretrained encoder (local directory or hub name).

    The label names travel inside the model config (`id2label`), so anything that loads the
    saved model - the MLflow pyfunc, ONNX export, serving - reports names, not indices. The
    new head is the only thing that may be missing from the checkpoint: anything else is logged.
    """
    with _quiet_load_report():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            encoder,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            output_loading_info=True,
        )
    missing = [k for k in info.get("missing_keys", []) if not any(p in k for p in _NEW_HEAD)]
    unexpected = [k for k in info.get("unexpected_keys", []) if not any(p in k for p in _MLM_HEAD)]
    if missing or unexpected or info.get("mismatched_keys"):
        logging.getLogger("zero2one").warning(
            "%s: weights missing from the checkpoint %s, unused %s, mismatched %s",
            encoder,
            missing,
            unexpected,
            info.get("mismatched_keys"),
        )
    return model


def count_parameters(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())
