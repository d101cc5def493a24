"""The optimize_generation stage: the instruction-tuned decoder as ONNX graphs with a KV cache, gated.

Builds an fp32 and an int8 (weight-only) graph with ONNX Runtime GenAI's model builder (`models/onnx_decoder.py`
says why the builder), checks that each really takes and returns past key/values, and gates each against PyTorch
on the test split before it may serve, as the classifier's optimize stage does (`tasks/optimize/`):

- teacher-forced next-token argmax agreement over every token of the test chats >= `min_agreement` (98%);
- exact match and chrF of greedy answers to the held-out prompts (scored by `tasks/judging/scoring.py`, like
  evaluate_generation) at most `max_metric_drop` points (1) below PyTorch's.

The most optimized graph that passes serves (int8, else fp32); when none passes PyTorch serves, and every reason is
recorded. A latency table (time to first token and decode tokens/s of PyTorch `generate()`, ORT fp32 and ORT int8
at batch 1 and 8, same thread count) goes to MLflow and Prefect; `bench/generation.py` measures more thoroughly.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers.generation.streamers import BaseStreamer

from core import reporting
from core.errors import PipelineInputError
from core.fingerprint import code_fingerprint, hash_json
from core.retry import RetryPolicy
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.generator import TextGenerator
from models.onnx_decoder import OrtDecoder, OrtTextGenerator, build_decoder, graph_size_mb, kv_cache_io
from models.onnx_export import ExportError
from tasks.data.loaders import load_splits
from tasks.judging.scoring import score_answers
from tasks.kinds.generation.chats import encode_chat
from tasks.results.common import Variant
from tasks.results.data import PreparedInstructions
from tasks.results.generation import GenerationParity, InstructionTunedModel, OptimizedGenerator

STAGE = "optimize_generation"
Precision = Literal["fp32", "int8"]


class GenerationLatencyConfig(BaseModel):
    """The stage's quick latency table (synthetic prompts, every row forced to `new_tokens`)."""

    model_config = ConfigDict(extra="forbid")

    batch_sizes: list[int] = Field([1, 8], min_length=1, description="Batch sizes to time.")
    prompt_tokens: int = Field(32, gt=0, description="Prompt length in tokens (the time to first token reads it).")
    new_tokens: int = Field(32, gt=1, description="Tokens generated per row (decode tokens/s counts all but the 1st).")
    iterations: int = Field(3, ge=1, description="Timed runs per backend and batch size (medians are reported).")


class OptimizeGenerationConfig(BaseModel):
    """ONNX graphs of the generator (KV cache, int8) and the parity gate a graph must pass to serve."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the stage (false: the PyTorch generator serves).")
    quantization: Literal["int8", "none"] = Field(
        "int8", description="int8: also build a weight-only int8 graph (MatMulNBits); none: fp32 only."
    )
    builder_options: dict[str, str] = Field(
        {}, description="Extra options of the onnxruntime-genai builder (its --extra_options, e.g. int4_block_size)."
    )
    min_agreement: float = Field(
        0.98, ge=0, le=1, description="Share of teacher-forced next tokens (argmax) that must match PyTorch."
    )
    max_metric_drop: float = Field(
        1.0, ge=0, le=100, description="Largest allowed drop of chrF and of exact match (in points, 0-100)."
    )
    max_prompts: int | None = Field(200, gt=0, description="Test chats to compare on (null: the whole test split).")
    max_new_tokens: int = Field(48, gt=0, description="Longest generated answer in the parity run.")
    batch_size: int = Field(32, gt=0, description="Batch size of the parity run's generations.")
    latency: GenerationLatencyConfig = GenerationLatencyConfig()
    retry: RetryPolicy = RetryPolicy(retries=1)


def check_model(model_dir: Path) -> dict:
    """Bad input is reported before any export starts."""
    for name in ("config.json", "tokenizer_config.json"):
        if not (model_dir / name).exists():
            raise PipelineInputError(
                f"{STAGE}: {model_dir} has no {name}; expected a causal LM saved with its tokenizer"
            )
    return json.loads((model_dir / "config.json").read_text())


def build_variants(
    cfg: OptimizeGenerationConfig, model_dir: Path, workdir: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """fp32 (the fallback) and, unless quantization is none, int8; each checked for its KV-cache inputs/outputs."""
    built, rejected = {}, {}
    for precision in ["fp32"] + (["int8"] if cfg.quantization == "int8" else []):
        out = workdir / precision
        try:
            if not (out / "genai_config.json").exists():  # a retried task reuses what an attempt built
                build_decoder(model_dir, out, precision, cfg.builder_options)
        except ExportError as e:
            rejected[precision] = str(e)
            continue
        past, present = kv_cache_io(out)
        if not past or len(past) != len(present):
            rejected[precision] = f"the graph has no KV cache (past inputs {past}, present outputs {present})"
            continue
        built[precision] = out
    return built, rejected


@torch.inference_mode()
def torch_next_tokens(model, rows: list[list[int]]) -> np.ndarray:
    """PyTorch's argmax next token at every position of every row, concatenated."""
    return np.concatenate([model(torch.tensor([r])).logits[0].argmax(-1).numpy() for r in rows])


def ort_next_tokens(decoder: OrtDecoder, rows: list[list[int]]) -> np.ndarray:
    return np.concatenate([decoder.logits(r).argmax(-1) for r in rows])


def check_parity(
    cfg: OptimizeGenerationConfig, ref_tokens: np.ndarray, tokens: np.ndarray, reference: dict, scores: dict
) -> GenerationParity:
    """Agreement and metric drops against PyTorch; `passed` applies the gate."""
    agreement = float((ref_tokens == tokens).mean())
    drops = {m: 100 * (reference[m] - scores[m]) if m == "exact_match" else reference[m] - scores[m] for m in scores}
    problems = []
    if agreement < cfg.min_agreement:
        problems.append(f"next-token agreement {agreement:.4f} < min_agreement={cfg.min_agreement}")
    for metric, drop in drops.items():
        if drop > cfg.max_metric_drop + 1e-9:
            problems.append(f"{metric} drops {drop:.2f} points > max_metric_drop={cfg.max_metric_drop}")
    return GenerationParity(
        agreement=agreement,
        tokens=len(tokens),
        **scores,
        exact_match_drop=drops["exact_match"],
        chrf_drop=drops["chrf"],
        passed=not problems,
        reason="; ".join(problems) or None,
    )


def gate_variants(
    cfg: OptimizeGenerationConfig, built: dict[str, Path], generator: TextGenerator, test: list, threads: int
) -> tuple[dict[str, GenerationParity], dict[str, str], dict[str, float]]:
    """Every built graph against `generator` (PyTorch): teacher-forced agreement on the test chats, metrics on
    their prompts. The graphs decode with the generator's own tokenizer and chat template."""
    rows = [encode_chat(generator.tokenizer, m, generator.context)["input_ids"] for m in test]
    prompts, references = [m[:-1] for m in test], [m[-1]["content"] for m in test]

    def scores(gen: TextGenerator) -> dict[str, float]:
        answers = gen.generate(prompts, cfg.max_new_tokens, batch_size=cfg.batch_size)
        return score_answers(answers, references).model_dump(include={"exact_match", "chrf"})

    reference, ref_tokens = scores(generator), torch_next_tokens(generator.model, rows)
    parity, rejected = {}, {}
    for variant, path in built.items():
        try:
            candidate = OrtTextGenerator(path, generator.tokenizer, threads)
        except Exception as e:  # ORT refuses the graph: that variant cannot serve
            rejected[variant] = f"ONNX Runtime GenAI cannot load it: {type(e).__name__}: {e}"
            continue
        tokens = ort_next_tokens(candidate.decoder, rows)
        parity[variant] = check_parity(cfg, ref_tokens, tokens, reference, scores(candidate))
        if not parity[variant].passed:
            rejected[variant] = f"parity failed: {parity[variant].reason}"
    return parity, rejected, reference


def choose(cfg: OptimizeGenerationConfig, parity: dict[str, GenerationParity]) -> tuple[Variant, str]:
    """The most optimized graph that passed parity, and the sentence that says so."""
    intended = "int8" if cfg.quantization == "int8" else "fp32"
    variant: Variant = next((v for v in ("int8", "fp32") if v in parity and parity[v].passed), "pytorch")
    if variant == intended:
        return variant, f"{variant} ONNX graph serves (parity passed)"
    if variant == "fp32":
        return variant, f"{intended} rejected, the fp32 ONNX graph serves instead"
    return variant, "no ONNX graph passed parity: the PyTorch model serves"


class _FirstToken(BaseStreamer):
    """Notes when `generate()` emits its first new token (the first `put` is the prompt)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


@torch.inference_mode()
def torch_timed(model, rows: list[list[int]], new_tokens: int) -> tuple[float, float]:
    """Seconds to the first new token and from there to the last, of eager `generate()` (greedy, KV cache)."""
    streamer = _FirstToken()
    start = time.perf_counter()
    model.generate(
        torch.tensor(rows),
        attention_mask=torch.ones(len(rows), len(rows[0]), dtype=torch.long),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        streamer=streamer,
        pad_token_id=model.config.pad_token_id,
    )
    end = time.perf_counter()
    return streamer.first - start, end - streamer.first


def latency_row(
    name: str, run: Callable[[list[list[int]]], tuple[float, float]], rows: list[list[int]], new: int, iterations: int
) -> dict:
    """Median time to first token (ms) and decode tokens/s (all rows, tokens after the first) of `run`."""
    run(rows)  # warm-up: ORT's first run allocates, PyTorch's builds its caches
    timings = [run(rows) for _ in range(iterations)]
    ttft = statistics.median(t for t, _ in timings)
    decode = statistics.median(len(rows) * (new - 1) / d for _, d in timings)
    return {"backend": name, "batch": len(rows), "ttft_ms": 1000 * ttft, "decode_tokens_per_s": decode}


def latency_table(
    cfg: GenerationLatencyConfig, model, built: dict[str, Path], threads: int, vocab_size: int
) -> list[dict]:
    """PyTorch eager `generate()` vs every graph that was built, on CPU with the same thread count."""
    rng, new = np.random.default_rng(0), cfg.new_tokens
    runners = {"pytorch": lambda r: torch_timed(model, r, new)}
    for v, path in built.items():
        decoder = OrtDecoder(path, threads)
        runners[f"ort-{v}"] = lambda r, d=decoder: d.timed_generate(r, new, min_new_tokens=new)[1:]
    table = []
    for batch in cfg.batch_sizes:
        rows = rng.integers(8, vocab_size, size=(batch, cfg.prompt_tokens)).tolist()  # past the special tokens
        table += [latency_row(name, run, rows, new, cfg.iterations) for name, run in runners.items()]
    eager = {r["batch"]: r["decode_tokens_per_s"] for r in table if r["backend"] == "pytorch"}
    return [r | {"decode_speedup": r["decode_tokens_per_s"] / eager[r["batch"]]} for r in table]


def optimize_generation(
    cfg: OptimizeGenerationConfig,
    data: PreparedInstructions,
    model: InstructionTunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> OptimizedGenerator:
    """Build the graphs, gate each on parity with PyTorch, time them, and choose what serves."""
    test = list(load_splits(data)["test"]["messages"])[: cfg.max_prompts]
    if not test:
        raise PipelineInputError(f"{STAGE}: the test split of {data.uri} is empty; parity cannot be checked")
    model_dir = materialize(model.uri)
    config = check_model(model_dir)
    key = hash_json(cfg.model_dump(exclude={"retry", "latency", "enabled"}), model.uri, code_fingerprint())
    workdir = ws.local_dir(STAGE, key)
    threads = torch.get_num_threads()  # ORT gets as many threads as PyTorch: a fair race

    built, rejected = build_variants(cfg, model_dir, workdir)
    generator = TextGenerator(model_dir)
    parity, failed, reference = gate_variants(cfg, built, generator, test, threads)
    reasons = [f"{v}: {why}" for v, why in (rejected | failed).items()]
    for why in reasons:
        reporting.logger().warning("%s: %s", STAGE, why)
    variant, verdict = choose(cfg, parity)
    latency = latency_table(cfg.latency, generator.model, built, threads, config["vocab_size"])
    sizes = {"pytorch": round(sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / 2**20, 2)}
    sizes |= {f"ort-{v}": graph_size_mb(path) for v, path in built.items()}
    fields = {
        "onnx_dir": variant if variant in built else None,
        "variant": variant,
        "passed": variant != "pytorch",
        "verdict": verdict,
        "reasons": reasons,
        "parity": parity,
        "reference": reference,
        "latency": latency,
        "sizes_mb": sizes,
        "eval_size": len(test),
    }
    report = {**fields, "parity": _parity_rows(parity)}
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    run_id = _log_to_mlflow(cfg, fields, data, model, tracking, parent_run_id)
    uri = publish_dir(workdir, ws.uri(STAGE, key))
    result = OptimizedGenerator(uri=uri, **fields, mlflow_run_id=run_id)
    _report(result, tracking)
    return result


def _parity_rows(parity: dict[str, GenerationParity]) -> list[dict]:
    return [{"variant": v, **p.model_dump()} for v, p in parity.items()]


def _log_to_mlflow(cfg, fields: dict, data, model, tracking: Tracking, parent_run_id) -> str:
    """What serves, its parity and decode speed-up as metrics; the full tables as artifacts."""
    variant, parity, latency = fields["variant"], fields["parity"], fields["latency"]
    tags = {
        "zero2one.data_fingerprint": data.fingerprint,
        "zero2one.sft_run_id": model.mlflow_run_id,
        "zero2one.optimize.variant": variant,
    }
    metrics = {f"reference_{k}": v for k, v in fields["reference"].items()}
    for v, p in parity.items():
        metrics |= {f"{v}_agreement": p.agreement, f"{v}_chrf": p.chrf, f"{v}_exact_match": p.exact_match}
    for row in latency:
        prefix = f"{row['backend'].replace('-', '_')}_b{row['batch']}"
        metrics |= {f"{prefix}_ttft_ms": row["ttft_ms"], f"{prefix}_decode_tokens_per_s": row["decode_tokens_per_s"]}
    with stage_run(tracking, STAGE, parent_run_id, tags) as run:
        mlflow.log_params({"quantization": cfg.quantization, "variant": variant, "min_agreement": cfg.min_agreement})
        mlflow.log_metrics(metrics)
        mlflow.log_table(pd.DataFrame(latency), artifact_file=f"{STAGE}/latency.json")
        mlflow.log_table(pd.DataFrame(_parity_rows(parity)), artifact_file=f"{STAGE}/parity.json")
        mlflow.log_dict({**fields, "parity": _parity_rows(parity)}, f"{STAGE}/report.json")
    return run.info.run_id


def _report(result: OptimizedGenerator, tracking: Tracking) -> None:
    reporting.table(
        "optimize-generation-latency",
        result.latency,
        description="time to first token (ms) and decode tokens/s, CPU, same thread count",
    )
    reporting.table(
        "optimize-generation-parity", _parity_rows(result.parity), description=f"vs PyTorch, {result.eval_size} chats"
    )
    reasons = "".join(f"\n- {r}" for r in result.reasons)
    ref = result.reference
    reporting.markdown(
        "optimize-generation-summary",
        f"# Generator optimization: {result.verdict}\n\nServing: `{result.onnx_uri or 'PyTorch model'}`{reasons}\n\n"
        f"Parity with PyTorch (exact match {ref['exact_match']:.4f}, chrF {ref['chrf']:.2f}) on "
        f"{result.eval_size} test chats:\n\n{reporting.md_table(_parity_rows(result.parity))}\n\n"
        f"Latency and decode speed:\n\n{reporting.md_table(result.latency)}\n\nSizes (MB): {result.sizes_mb}  \n"
        f"MLflow run: [{result.mlflow_run_id}]({tracking.run_url(result.mlflow_run_id)})\n",
    )
    agreement = ", ".join(f"{v} {p.agreement:.1%} agreement" for v, p in result.parity.items()) or "no graph built"
    reporting.logger().info("%s: %s (%s)", STAGE, result.verdict, agreement)
