"""The from-scratch path for named entities: the classifier's tokenizer and masked-LM stages (`tasks/training/`) run
on the kind's own text, the sentences' words joined by spaces; fine-tuning then starts from that encoder's folder.

The tokenizer stage reads the prepared folder's corpus as it is (the training sentences, `prepare.py`). The pretrain
stage reads a classifier's prepared data (`PreparedData`: a `text` corpus, and a validation split whose `text` and
`label` it drops after tokenizing), so it is handed a view of the sentences in that shape, written once under
`<workspace>/pretraining_text/<key>/`. Words are joined, not re-tokenized: the trained WordPiece vocabulary splits
them as the tagger's windows will (`models/token_classifier.py`, by word ids of the fast tokenizer).
"""

from __future__ import annotations

from core.fingerprint import hash_json
from core.tracking import Tracking
from core.workspace import Workspace, exists
from tasks.results.classification import EncoderArtifact
from tasks.results.data import PreparedData, TokenizerArtifact
from tasks.results.entities import PreparedEntities
from tasks.training.pretrain import PretrainConfig, pretrain

TEXT = "entities: sentences, words joined by spaces"  # in the view's key: a new way of making the text, a new view


def pretraining_text(data: PreparedEntities, ws: Workspace) -> PreparedData:
    """The training sentences as the pretraining corpus, the validation sentences as its held-out text."""
    from tasks.data.loaders import load_splits

    splits = load_splits(data)
    corpus, validation = splits["train"]["text"], splits["validation"]["text"]
    fingerprint = hash_json(data.fingerprint, TEXT)
    view = PreparedData(
        uri=ws.uri("pretraining_text", fingerprint),
        fingerprint=fingerprint,
        sizes={"train": len(corpus), "validation": len(validation)},
        dropped={},
        source=f"{data.source} (sentences)",
        labels=[],
        corpus_size=len(corpus),
    )
    if not exists(view.splits_uri + "/dataset_dict.json"):
        save_text(view, corpus, validation)
    return view


def save_text(view: PreparedData, corpus: list[str], validation: list[str]) -> None:
    """Corpus first, splits last (their presence marks the folder complete, as the prepare stages do)."""
    import datasets

    datasets.Dataset.from_dict({"text": corpus}).save_to_disk(view.corpus_uri)
    # `label` only because the pretrain stage drops `text` and `label` from validation; nothing reads it.
    held_out = datasets.Dataset.from_dict({"text": validation, "label": [0] * len(validation)})
    datasets.DatasetDict({"validation": held_out}).save_to_disk(view.splits_uri)


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
