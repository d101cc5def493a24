"""The from-scratch path for named entities: the classifier's tokenizer and masked-LM stages (`tasks/training/`) run
on the kind's own text, the sentences' words joined by spaces; fine-tuning then starts from that encoder's folder.

The tokenizer stage reads the prepared folder's corpus as it is (the training sentences, `prepare.py`). The pretrain
stage reads a classifier's prepared data (`PreparedData`: a `text` corpus and a validation split), so it is handed
a view of the sentences in that shape (`tasks/data/text_view.py`). Words are joined, not re-tokenized: the trained
WordPiece vocabulary splits them as the tagger's windows will (`models/token_classifier.py`, by word ids of the
fast tokenizer).
"""

from __future__ import annotations

from core.tracking import Tracking
from core.workspace import Workspace
from tasks.data.text_view import text_view
from tasks.results.classification import EncoderArtifact
from tasks.results.data import PreparedData, TokenizerArtifact
from tasks.results.entities import PreparedEntities
from tasks.training.pretrain import PretrainConfig, pretrain

TEXT = "entities: sentences, words joined by spaces"  # in the view's key: a new way of making the text, a new view


def pretraining_text(data: PreparedEntities, ws: Workspace) -> PreparedData:
    """The training sentences as the pretraining corpus, the validation sentences as its held-out text."""
    from tasks.data.loaders import load_splits

    splits = load_splits(data)
    return text_view(data, TEXT, splits["train"]["text"], splits["validation"]["text"], ws)


def pretrain_entities(
    cfg: PretrainConfig,
    data: PreparedEntities,
    tokenizer: TokenizerArtifact,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> EncoderArtifact:
    """The pretrain stage (`tasks/training/pretrain.py`) on the sentences: no second masked-LM loop."""
    return pretrain(cfg, pretraining_text(data, ws), tokenizer, tracking, ws, parent_run_id=parent_run_id)
