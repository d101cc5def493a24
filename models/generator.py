"""`TextGenerator`: prompts or chats in, answers out, through the tokenizer's chat template.

One generator for every consumer - evaluation, the MLflow pyfunc, serving - so the scores we report are for the
answers users get. Greedy by default (temperature 0); with a temperature it samples (nucleus `top_p`) from a
seeded generator, so the same request with the same seed gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

Chat = str | list[dict[str, str]]  # a prompt, or messages [{role, content}, ...] ending with the user's turn


class TextGenerator:
    """A saved causal LM (folder with config, safetensors and tokenizer with its chat template)."""

    def __init__(self, model_dir: str | Path, tokenizer_dir: str | Path | None = None, device: str = "cpu"):
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or model_dir))
        self.tokenizer.padding_side = "left"  # generation continues at the right end of every row
        self.tokenizer.truncation_side = "left"  # a prompt too long for the context loses its start, not the question
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device).eval()
        self.device = device
        config = self.model.config.get_text_config()
        self.context = getattr(config, "max_position_embeddings", None) or 2048

    def render(self, chat: Chat) -> str:
        """The text the model continues: the chat through the template, ending with the assistant's turn marker."""
        messages = [{"role": "user", "content": chat}] if isinstance(chat, str) else list(chat)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def generate(
        self,
        chats: Sequence[Chat],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = 32,
    ) -> list[str]:
        """One answer per chat, in order. Batches are sorted by length so left padding stays short."""
        texts = [self.render(c) for c in chats]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        answers = [""] * len(texts)
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self._batch([texts[i] for i in idx], max_new_tokens, temperature, top_p)
            for i, answer in zip(idx, batch, strict=True):
                answers[i] = answer
        return answers

    def _batch(self, texts: list[str], max_new_tokens: int, temperature: float, top_p: float) -> list[str]:
        tok = self.tokenizer
        enc = tok(
            texts,
            padding=True,
            truncation=True,
            max_length=max(1, self.context - max_new_tokens),
            add_special_tokens=False,
            return_tensors="pt",
        ).to(self.device)
        sampling = {"temperature": temperature, "top_p": top_p} if temperature > 0 else {}
        out = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **sampling,
        )
        new = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
