"""Prepared data sets and tokenizers: what every kind's data and tokenizer stages return."""

from __future__ import annotations

from pydantic import BaseModel


class ArrowSplits(BaseModel):
    """A prepared data set on storage: splits and corpus under one fingerprinted folder (both tracks)."""

    uri: str
    fingerprint: str
    sizes: dict[str, int]
    dropped: dict[str, int]
    source: str

    @property
    def splits_uri(self) -> str:
        return self.uri.rstrip("/") + "/splits"

    @property
    def corpus_uri(self) -> str:
        return self.uri.rstrip("/") + "/corpus"


class PreparedData(ArrowSplits):
    """What the classification stages need: where the Arrow data is, and what is in it (`tasks/data/prepare.py`)."""

    labels: list[str]
    corpus_size: int


class PreparedInstructions(ArrowSplits):
    """Instruction data (`tasks/kinds/generation/data.py`); the corpus has its own train/validation sizes."""

    corpus_sizes: dict[str, int]


class TokenizerArtifact(BaseModel):
    """A saved tokenizer folder (`tasks/training/tokenizer.py`, `tasks/kinds/generation/tokenizer.py`)."""

    uri: str
    vocab_size: int
    trained: bool


class RetrainData(BaseModel):
    """The champion's splits plus newly labeled rows, as a folder `prepare_data` reads split by split."""

    uri: str
    added: dict[str, int]
    dropped: dict[str, int]
    labels: list[str]
