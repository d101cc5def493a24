"""The train_causal_tokenizer stage: a byte-level BPE with special tokens and a chat template.

Byte-level (GPT-2's recipe, trained with `tokenizers`): every UTF-8 byte is in the base alphabet, so there is no
unknown token and any text - Chinese, emoji, typos - encodes and decodes back to itself. The chat template
(Jinja, the `transformers` standard) is saved with the tokenizer, so training, evaluation and the registered
model render chats the same way. With `pretrained` set (a base checkpoint's folder, or a hub name), that
tokenizer is used instead, with its own template; one without a template gets ours.

Its result (`TokenizerArtifact`) is in `tasks/results.py`; `load_tokenizer` (both tracks) in `tasks/data/loaders.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import hash_json
from core.retry import RetryPolicy
from core.storage import publish_dir
from core.workspace import Workspace
from tasks.data.loaders import load_corpus, load_splits
from tasks.kinds.generation.llm_checkpoint import resolve_checkpoint
from tasks.results.data import PreparedInstructions, TokenizerArtifact

PAD, END = "<|pad|>", "<|end|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, END, *ROLE_TOKENS]
# One turn: `<|role|>\n{content}<|end|>`. `<|end|>` is also the eos token, so generation stops after one answer,
# and the answer a model learns is exactly `{content}<|end|>` (what follows the generation prompt).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)


class CausalTokenizerConfig(BaseModel):
    """Train a byte-level BPE, or use a checkpoint's own tokenizer."""

    model_config = ConfigDict(extra="forbid")

    pretrained: str | None = Field(
        None, description="Folder (save_pretrained layout) or hub name of a tokenizer to use instead of training."
    )
    vocab_size: int = Field(2000, ge=256 + len(SPECIAL_TOKENS), description="Tokens, the 256 bytes included.")
    min_frequency: int = Field(2, ge=1, description="A merge must occur this often in the training texts.")
    chat_template: str | None = Field(None, description="Jinja chat template; default: ours, or the checkpoint's.")
    retry: RetryPolicy = RetryPolicy(retries=1)


def train_byte_bpe(texts: list[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE on `texts`, wrapped as a transformers tokenizer with our special tokens and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def _pretrained(cfg: CausalTokenizerConfig, ws: Workspace) -> PreTrainedTokenizerBase:
    try:  # a GGUF checkpoint is converted here first (once per workspace, `tasks/kinds/generation/llm_checkpoint.py`)
        tok = AutoTokenizer.from_pretrained(resolve_checkpoint(cfg.pretrained, ws))
    except (OSError, ValueError) as e:
        raise PipelineInputError(f"generation_tokenizer.pretrained='{cfg.pretrained}' could not be loaded: {e}") from e
    if tok.eos_token is None:
        raise PipelineInputError(f"tokenizer '{cfg.pretrained}' has no eos token: generation could never stop")
    if not tok.chat_template:
        tok.chat_template = CHAT_TEMPLATE.replace("'<|end|>'", "eos_token")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _training_texts(data: PreparedInstructions) -> list[str]:
    """The corpus and the training chats: the answers' words ("Verdict", "Aspects") get tokens of their own."""
    chats = load_splits(data)["train"]["messages"]
    return list(load_corpus(data)["train"]["text"]) + [m["content"] for ms in chats for m in ms]


def train_causal_tokenizer(cfg: CausalTokenizerConfig, data: PreparedInstructions, ws: Workspace) -> TokenizerArtifact:
    """Train (or load) the tokenizer and save it under `<workspace>/tokenizers/<key>/`."""
    uri = ws.uri("tokenizers", hash_json(cfg, data.fingerprint, "causal"))
    if cfg.pretrained:
        tokenizer = _pretrained(cfg, ws)
    else:
        texts = _training_texts(data)
        tokenizer = train_byte_bpe(texts, cfg.vocab_size, cfg.min_frequency)
        reporting.logger().info("trained a byte-level BPE of %d tokens on %d texts", len(tokenizer), len(texts))
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        publish_dir(Path(tmp), uri)
    what = f"Loaded `{cfg.pretrained}`" if cfg.pretrained else "Trained a byte-level BPE"
    reporting.markdown("train-causal-tokenizer", f"# Tokenizer\n\n{what}: {len(tokenizer)} tokens -> `{uri}`\n")
    return TokenizerArtifact(uri=uri, vocab_size=len(tokenizer), trained=cfg.pretrained is None)
