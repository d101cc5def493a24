"""Reading stage results back: prepared splits and corpora of both tracks, tokenizers, the TF-IDF baseline.

Several stages read what an earlier one wrote; they import these loaders (and the result types from
`tasks/results/`) instead of the stage that wrote it. Heavy libraries are imported when a loader runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.storage import materialize
from tasks.results.classification import BaselineModel
from tasks.results.data import ArrowSplits, TokenizerArtifact

if TYPE_CHECKING:
    import datasets

    from models.baseline_onnx import BaselineClassifier


def load_splits(data: ArrowSplits) -> datasets.DatasetDict:
    """train/validation/test of prepared data (`PreparedData` or `PreparedInstructions`)."""
    import datasets

    return datasets.load_from_disk(data.splits_uri)


def load_corpus(data: ArrowSplits) -> datasets.Dataset | datasets.DatasetDict:
    """The pretraining corpus: one Dataset (classification) or train/validation (instructions)."""
    import datasets

    return datasets.load_from_disk(data.corpus_uri)


def load_tokenizer(artifact: TokenizerArtifact):
    """The saved tokenizer of either track (WordPiece for the encoder; byte BPE and a chat template for the decoder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(materialize(artifact.uri)))


def load_baseline(model: BaselineModel) -> BaselineClassifier:
    from models.baseline_onnx import BaselineClassifier

    return BaselineClassifier(materialize(model.uri))
