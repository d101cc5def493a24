"""Llama-shaped decoders: the shape as a typed config, a builder, and a loader for any causal-LM checkpoint.

`LlamaForCausalLM` is the architecture most open decoders share (RoPE positions, RMSNorm, SwiGLU feed-forward,
grouped-query attention). Builders only build; training lives in `tasks/`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel


class DecoderShape(BaseModel):
    """The size of a from-scratch decoder. Defaults: the `tiny` CPU preset (~1M parameters, 800-token vocabulary)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, gt=0, description="Width of every layer.")
    num_layers: int = Field(4, gt=0, description="Transformer blocks.")
    num_heads: int = Field(4, gt=0, description="Query heads; must divide hidden_size.")
    num_kv_heads: int | None = Field(None, gt=0, description="Key/value heads (grouped-query); default num_heads.")
    intermediate_size: int = Field(384, gt=0, description="Width of the SwiGLU feed-forward block.")
    max_length: int = Field(256, gt=8, description="Longest sequence in tokens (context length).")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency.")
    tie_embeddings: bool = Field(True, description="Share input and output embeddings (saves parameters).")

    def to_llama_config(self, vocab_size: int, pad_token_id: int, eos_token_id: int) -> LlamaConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={kv}")
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=kv,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_length,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            tie_word_embeddings=self.tie_embeddings,
            pad_token_id=pad_token_id,
            bos_token_id=eos_token_id,
            eos_token_id=eos_token_id,
        )


# Named shapes for configs: `tiny` trains in minutes on 2 CPU cores; `100m` is a GPU shape (100.1M parameters at a
# 32k vocabulary, in the family of GPT-2 small / SmolLM-135M).
SHAPES = {
    "tiny": DecoderShape(),
    "100m": DecoderShape(
        hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=2048, max_length=1024
    ),
}


def build_causal_lm(shape: DecoderShape, vocab_size: int, pad_token_id: int, eos_token_id: int) -> LlamaForCausalLM:
    """A randomly initialised Llama-shaped decoder, for pretraining from scratch."""
    model = LlamaForCausalLM(shape.to_llama_config(vocab_size, pad_token_id, eos_token_id))
    model.generation_config.pad_token_id = pad_token_id
    model.generation_config.eos_token_id = eos_token_id
    return model


def load_causal_lm(checkpoint: str) -> PreTrainedModel:
    """Any causal LM in the `save_pretrained` layout (a local folder) or a hub name, whatever its architecture."""
    return AutoModelForCausalLM.from_pretrained(checkpoint)


def context_length(model: PreTrainedModel) -> int:
    """The longest sequence the model was built for (architectures name it differently)."""
    config = model.config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if value := getattr(config, name, None):
            return int(value)
    return 2048
