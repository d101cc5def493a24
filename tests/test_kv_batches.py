"""Continuous batching on each runtime the service decodes with (`serving/kv_batches.py`), through the real engine:
prompts of different lengths that join a running batch mid-decode and leave it at different lengths get exactly
the greedy tokens transformers' `generate()` gives each prompt alone - with PyTorch's left-padded cache and with the
ONNX graph's right-padded one. A tiny random Llama and its fp32 graph are built in seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.decoder import DecoderShape, build_causal_lm
from models.generator import TextGenerator
from models.onnx_decoder import build_decoder
from serving.generation_engine import GenerationEngine, Sampling
from serving.kv_batches import OrtRuntime, TorchRuntime, runtime_for
from tasks.kinds.generation.tokenizer import train_byte_bpe

TEXTS = ["The battery of this phone is great.", "Verdict: positive. Aspects: battery (positive).", "Hi there"]
SHAPE = DecoderShape(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, max_length=128)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random decoder with spread weights (answers differ from prompt to prompt) and its fp32 graph."""
    root = tmp_path_factory.mktemp("kv-batches")
    tok = train_byte_bpe(TEXTS * 20, vocab_size=300)
    torch.manual_seed(0)
    model = build_causal_lm(SHAPE, len(tok), tok.pad_token_id, tok.eos_token_id)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        model.lm_head.weight[tok.eos_token_id] = 0.0  # answers run to their length (a stop is tested elsewhere)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model", build_decoder(root / "model", root / "fp32", "fp32")


async def _through_engine(runtime, tokenizer, prompts: list[list[int]], lengths: list[int]) -> list[list[int]]:
    """The first half of the prompts start together; the rest join once the first has 3 tokens."""
    engine = GenerationEngine(runtime, tokenizer, max_batch_size=8)
    engine.start()
    half = len(prompts) // 2
    seqs = [engine.submit(p, Sampling(max_tokens=n)) for p, n in zip(prompts[:half], lengths[:half], strict=True)]
    while len(seqs[0].generated) < 3:
        await seqs[0].queue.get()
    assert all(s.finish_reason is None for s in seqs), "the late prompts must join a batch that is still decoding"
    seqs += [engine.submit(p, Sampling(max_tokens=n)) for p, n in zip(prompts[half:], lengths[half:], strict=True)]
    await engine.stop()
    return [s.generated for s in seqs]


@pytest.mark.parametrize("runtime", ["pytorch", "onnx"])
def test_rows_that_join_and_leave_a_running_batch_decode_as_if_alone(checkpoint, runtime: str) -> None:
    folder, graph = checkpoint
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = [tokenizer(TEXTS[i % 3] + " x" * i, add_special_tokens=False)["input_ids"] for i in range(8)]
    lengths = [12, 9, 16, 10, 4, 11, 7, 14]  # rows leave at different steps, and leave holes in the batch
    served = OrtRuntime(graph, threads=1) if runtime == "onnx" else TorchRuntime(model, tokenizer.pad_token_id)

    got = asyncio.run(_through_engine(served, tokenizer, prompts, lengths))

    for prompt, n, tokens in zip(prompts, lengths, got, strict=True):
        with torch.inference_mode():
            alone = model.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
        assert tokens == alone[0, len(prompt) :].tolist()
    assert len({tuple(t[:4]) for t in got}) > 4, "a degenerate model would make this test vacuous"


def test_auto_decodes_with_the_graph_that_passed_parity_and_onnx_demands_one(checkpoint) -> None:
    folder, graph = checkpoint
    generator = TextGenerator(folder)

    assert runtime_for(generator, str(graph), "auto", "m v1").name == "onnx"
    assert runtime_for(generator, None, "auto", "m v1").name == "pytorch"
    assert runtime_for(generator, str(graph), "pytorch", "m v1").name == "pytorch"
    with pytest.raises(ValueError, match="m v2 has no ONNX graph that passed the parity gate"):
        runtime_for(generator, None, "onnx", "m v2")
