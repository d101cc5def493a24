"""The generator's gate rules that can fail (issue 22): parity from the optimize stage, prompts neither model
trained on, and the score of what serves - with a real registry, real ONNX graphs and tiny random decoders.

The champion was tuned on the first 60% of an instruction file, the challenger on all of it: each run's test split
holds prompts the other trained on. The challenger's ONNX graph comes from other weights (a broken export, as far
as parity can tell): the optimize stage falls back to PyTorch, and the gate's parity rule must fail and say why.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
import torch

from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from models.decoder import DecoderShape, build_causal_lm
from models.generator import TextGenerator
from tasks.judging.gate import gate
from tasks.kinds.generation.chats import prompt_key
from tasks.kinds.generation.data import InstructionDataConfig, prepare_instructions
from tasks.kinds.generation.optimize import (
    OptimizedGenerator,
    OptimizeGenerationConfig,
    build_variants,
    choose,
    gate_variants,
)
from tasks.kinds.generation.tokenizer import train_byte_bpe
from tasks.registry.register import register
from tasks.results import GenerationReport, GenerationScores, InstructionTunedModel, Lineage
from tasks.stage_configs import EvaluateGenerationConfig, GateConfig, RegisterConfig

SHAPE = DecoderShape(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, max_length=128)
OFF = {"baseline_rule": False, "baseline_rule_off_reason": "random tiny decoders: these tests are about rows"}
NAME = "honest-generator"


def _decoder(folder: Path, tok, seed: int) -> str:
    torch.manual_seed(seed)
    model = build_causal_lm(SHAPE, len(tok), tok.pad_token_id, tok.eos_token_id)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return str(folder)


def _chats(data, *names: str) -> list[list[dict]]:
    splits = datasets.load_from_disk(data.splits_uri)
    return [list(m) for name in names for m in splits[name]["messages"]]


def _report(data) -> GenerationReport:
    scores = GenerationScores(exact_match=0.0, chrf=3.25)
    return GenerationReport(
        uri="none", model=scores, before_sft=None, retrieval=scores, passed=True, reasons=[],
        test_size=len(_chats(data, "test")), samples=[], mlflow_run_id="none",
    )  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-generation-honest")
    ws = Workspace(root=str(root / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(experiment="gate-generation-honest"), ws)
    demo = prepare_instructions(InstructionDataConfig(max_rows=240, corpus=None), ws)
    chats = _chats(demo, "train", "validation", "test")
    for name, rows in (("first", chats[: int(0.6 * len(chats))]), ("all", chats)):
        lines = [json.dumps({"messages": m}, ensure_ascii=False) for m in rows]
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    read = [InstructionDataConfig(source=str(root / f"{n}.jsonl"), corpus=None) for n in ("first", "all")]
    old, new = (prepare_instructions(cfg, ws) for cfg in read)
    tok = train_byte_bpe([m["content"] for ms in chats for m in ms], vocab_size=400)
    model_dir = _decoder(root / "model", tok, seed=0)
    model = InstructionTunedModel(
        uri=model_dir, base_model="random", method="full", global_step=0, resumed_from_step=0,
        eval_loss=1.0, perplexity=2.7, too_long=0, samples_per_second=1.0, mlflow_run_id="none",
    )  # fmt: skip
    # The optimize stage's parity gate on graphs of other weights: none passes, PyTorch serves.
    cfg = OptimizeGenerationConfig(quantization="none", max_new_tokens=8)
    wrong, _ = build_variants(cfg, Path(_decoder(root / "other", tok, seed=1)), root / "wrong")
    parity, rejected, reference = gate_variants(cfg, wrong, TextGenerator(model_dir), _chats(new, "test")[:6], 1)
    variant, sentence = choose(cfg, parity)
    optimized = OptimizedGenerator(
        uri=str(root / "wrong"), onnx_dir=None, variant=variant, passed=variant != "pytorch", verdict=sentence,
        reasons=[f"{v}: {why}" for v, why in rejected.items()], parity=parity, reference=reference, latency=[],
        sizes_mb={}, eval_size=6, mlflow_run_id="none",
    )  # fmt: skip
    lineage, reg = Lineage(config_hash="test", code_version="test"), RegisterConfig(model_name=NAME)
    champion = register(reg, old, model, _report(old), lineage, tracking, ws)
    tracking.client().set_registered_model_alias(NAME, "champion", champion.version)
    report = _report(new)
    challenger = register(reg, new, model, report, lineage, tracking, ws, optimized=optimized)
    generation = EvaluateGenerationConfig(max_prompts=None, max_new_tokens=8, batch_size=16)
    verdict = gate(GateConfig(**OFF), new, challenger, report, tracking, ws, generation=generation, optimized=optimized)
    return {"old": old, "new": new, "verdict": verdict, "challenger": challenger, "report": report,
            "optimized": optimized, "tracking": tracking}  # fmt: skip


def test_a_graph_that_fails_parity_fails_the_gate_and_pytorch_serves(lab) -> None:
    verdict, optimized = lab["verdict"], lab["optimized"]
    assert optimized.variant == "pytorch" and not optimized.passed
    rule = {r.name: r for r in verdict.rules}["parity"]
    assert not rule.passed and rule.value == "pytorch (no graph passed)", rule
    assert "fp32: parity failed: next-token agreement" in rule.reason and "PyTorch model serves" in rule.reason
    assert not verdict.passed and "parity" in verdict.tags()["zero2one.gate.failed_rules"].split(",")
    tags = lab["tracking"].client().get_model_version(NAME, lab["challenger"].version).tags
    assert tags["zero2one.serving_variant"] == "pytorch" and tags["zero2one.metrics.served_runtime"] == "pytorch"
    assert tags["zero2one.metrics.served_test_chrf"] == f"{lab['report'].model.chrf:.4f}"


def test_the_frozen_prompts_leave_out_every_prompt_either_model_trained_on(lab) -> None:
    old, new, verdict = lab["old"], lab["new"], lab["verdict"]
    trained = {prompt_key(m) for data in (old, new) for m in _chats(data, "train", "validation")}
    pool = {prompt_key(m) for data in (old, new) for m in _chats(data, "test")}
    assert len(pool & trained) > 10  # the re-split put test prompts of one run into the other's training chats
    frozen = pd.read_parquet(Path(verdict.eval_uri.removeprefix("file://"), "eval.parquet"))
    keys = {prompt_key(json.loads(m)) for m in frozen["messages"]}
    assert not keys & trained and keys == pool - trained and verdict.eval_size == len(keys)
    assert verdict.eval_sources["excluded_trained_on"] == len(pool & trained)
