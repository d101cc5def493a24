"""The train_tokenizer stage: a WordPiece vocabulary trained on the pretraining corpus.

Or, with `pretrained` set, an existing tokenizer loaded by path or hub name. Either way it is
saved with `save_pretrained`, so every later stage loads it with `AutoTokenizer`.

Its result (`TokenizerArtifact`) is in `tasks/results.py`; `load_tokenizer` (both tracks) in `tasks/data/loaders.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, BertTokenizerFast

from core import reporting
from core.checkpoints import local_checkpoint
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.retry import RetryPolicy
from core.storage import publish_dir
from core.workspace import Workspace
from tasks.data.loaders import load_corpus
from tasks.data.text_script import CJK_THRESHOLD, cjk_share
from tasks.results.data import PreparedData, TokenizerArtifact

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TokenizerConfig(BaseModel):
    """Train a WordPiece vocabulary, or reuse an existing tokenizer."""

    model_config = ConfigDict(extra="forbid")

    pretrained: str | None = Field(None, description="Path or hub name of a tokenizer to use instead of training.")
    vocab_size: int = Field(4000, ge=len(SPECIAL_TOKENS) + 26)
    min_frequency: int = Field(2, ge=1)
    lowercase: bool = True
    cjk: Literal["auto", "characters", "subwords"] = Field(
        "auto",
        description="Text without spaces (Chinese, Japanese kanji): characters makes every CJK ideograph a token "
        "(BERT's Chinese handling); subwords lets WordPiece learn runs of them; auto: characters when CJK "
        f"ideographs are at least {CJK_THRESHOLD:.0%} of the corpus's letters, else the BERT default (characters).",
    )
    retry: RetryPolicy = RetryPolicy(retries=1)


def choose_cjk(cfg: TokenizerConfig, texts) -> tuple[bool, str]:
    """Whether each CJK ideograph becomes its own token, and why (for the log and the stage summary)."""
    if cfg.cjk == "characters":
        return True, "tokenizer.cjk=characters: each CJK ideograph is a token of its own"
    if cfg.cjk == "subwords":
        return False, "tokenizer.cjk=subwords: WordPiece learns runs of CJK ideographs as subwords"
    share = cjk_share(texts)
    if share >= CJK_THRESHOLD:
        return True, (
            f"{share:.0%} of the corpus's letters are CJK ideographs (text without spaces): each ideograph is a "
            "token of its own, as in BERT's Chinese models"
        )
    return True, (
        f"{share:.1%} of the corpus's letters are CJK ideographs: text with spaces; any ideograph is still a token "
        "of its own (the BERT default)"
    )


def _train_wordpiece(texts, cfg: TokenizerConfig, cjk_characters: bool = True) -> BertTokenizerFast:
    """The BERT recipe with the `tokenizers` library: normalise, split on whitespace/punctuation, WordPiece.

    Not bit-reproducible: the trainer breaks count ties in hash-map order, so two trainings on the same
    corpus can differ in a few tokens and ids (huggingface/tokenizers#1794). The stage cache keeps one
    run's vocabulary for everything downstream; a rerun with new inputs may get a slightly different one.
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=cfg.lowercase, handle_chinese_chars=cjk_characters)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=cfg.lowercase, tokenize_chinese_chars=cjk_characters)


def train_tokenizer(cfg: TokenizerConfig, data: PreparedData, ws: Workspace) -> TokenizerArtifact:
    """Train (or load) the tokenizer and save it under `<workspace>/tokenizers/<key>/`."""
    log = reporting.logger()
    uri = ws.uri("tokenizers", hash_json(cfg, data.fingerprint))
    why = ""
    if cfg.pretrained:
        try:
            tokenizer = AutoTokenizer.from_pretrained(local_checkpoint(cfg.pretrained))
        except (OSError, ValueError) as e:
            raise PipelineInputError(f"tokenizer.pretrained='{cfg.pretrained}' could not be loaded: {e}") from e
    else:
        corpus = load_corpus(data)["text"]
        characters, why = choose_cjk(cfg, corpus)
        log.info("tokenizer: %s", why)
        tokenizer = _train_wordpiece(corpus, cfg, characters)
        log.info("trained a WordPiece vocabulary of %d tokens on %d texts", len(tokenizer), len(corpus))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        publish_dir(Path(tmp), uri)
    reporting.markdown(
        "train-tokenizer",
        f"# Tokenizer\n\n{'Loaded `' + cfg.pretrained + '`' if cfg.pretrained else 'Trained WordPiece'}: "
        f"{len(tokenizer)} tokens -> `{uri}`\n\n{why}\n",
    )
    return TokenizerArtifact(uri=uri, vocab_size=len(tokenizer), trained=cfg.pretrained is None)
