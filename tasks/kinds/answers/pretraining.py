"""The from-scratch path for question answering: the classifier's tokenizer and masked-LM stages (`tasks/training/`)
run on the kind's own text, the training contexts and questions; fine-tuning then starts from that encoder's folder.

Both stages read a classifier's prepared data (`PreparedData`: a `text` corpus; the pretrain stage also a validation
split), so each is handed a view of the questions in that shape (`tasks/data/text_view.py`):
- the tokenizer's: every distinct training context and every training question, whole (Chinese text has no spaces:
  the tokenizer stage makes each CJK ideograph a token, `tasks/training/tokenizer.py`);
- the pretrain stage's: the contexts cut into pieces of at most the encoder's length in tokens of the trained
  tokenizer, plus the questions. A context is far longer than the encoder's positions (CMRC 2018's run to ~500
  characters, COVID-QA's to 60k), and the pretrain stage truncates each text: whole contexts would teach only their
  first window. Cut at token boundaries by the tokenizer's own overflow windows, as the transformers MLM example
  groups its texts.
"""

from __future__ import annotations

from core.tracking import Tracking
from core.workspace import Workspace
from tasks.data.text_view import text_view
from tasks.kinds.answers.splits import questions
from tasks.results.answers import PreparedQuestions
from tasks.results.classification import EncoderArtifact
from tasks.results.data import PreparedData, TokenizerArtifact
from tasks.training.pretrain import PretrainConfig, pretrain
from tasks.training.tokenizer import TokenizerConfig, train_tokenizer


def _texts(data: PreparedQuestions, split: str) -> tuple[list[str], list[str]]:
    """(distinct contexts, questions) of a split, in file order."""
    found = questions(data, split)
    return list(dict.fromkeys(ex.context for ex in found)), [ex.question for ex in found]


def pieces(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """Each text cut at token boundaries into pieces of at most `max_length` tokens, specials included."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_overflowing_tokens=True,
                    return_offsets_mapping=True)  # fmt: skip
    out = []
    for window, owner in enumerate(enc["overflow_to_sample_mapping"]):
        offsets, which = enc["offset_mapping"][window], enc.sequence_ids(window)
        spans = [span for span, seq in zip(offsets, which, strict=True) if seq is not None]  # specials: None
        if spans:
            out.append(texts[owner][spans[0][0] : spans[-1][1]])
    return out


def tokenizer_text(data: PreparedQuestions, ws: Workspace) -> PreparedData:
    """The training contexts and questions, whole: what the WordPiece vocabulary is trained on."""
    contexts, asked = _texts(data, "train")
    return text_view(data, "answers: contexts and questions", contexts + asked, [], ws)


def pretraining_text(
    data: PreparedQuestions, tokenizer: TokenizerArtifact, max_length: int, ws: Workspace
) -> PreparedData:
    """Training contexts in pieces of `max_length` tokens and questions; validation's likewise, held out."""
    from tasks.data.loaders import load_tokenizer

    how = f"answers: contexts in pieces of {max_length} tokens of {tokenizer.uri}, and questions"
    tok, texts = load_tokenizer(tokenizer), {}
    for split in ("train", "validation"):
        contexts, asked = _texts(data, split)
        texts[split] = pieces(tok, contexts, max_length) + asked
    return text_view(data, how, texts["train"], texts["validation"], ws)


def tokenize_answers(cfg: TokenizerConfig, data: PreparedQuestions, ws: Workspace) -> TokenizerArtifact:
    """The tokenizer stage: a checkpoint's tokenizer (the pretrained path), or one trained on contexts + questions."""
    return train_tokenizer(cfg, data if cfg.pretrained else tokenizer_text(data, ws), ws)


def pretrain_answers(
    cfg: PretrainConfig,
    data: PreparedQuestions,
    tokenizer: TokenizerArtifact,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> EncoderArtifact:
    """The pretrain stage (`tasks/training/pretrain.py`) on the questions' text: no second masked-LM loop."""
    text = pretraining_text(data, tokenizer, cfg.shape.max_length, ws)
    return pretrain(cfg, text, tokenizer, tracking, ws, parent_run_id=parent_run_id)
