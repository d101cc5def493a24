"""Generator decoding speed, side by side in one run: PyTorch eager `generate()` vs ONNX Runtime fp32 and int8.

1. The tiny preset (`configs/tiny-generation.yaml`), trained here as the pipeline trains it (or `--model-dir`: an
   instruction-tuned model of the same demo data), then our `optimize_generation` stage: the builder's fp32 and
   int8 graphs with a KV cache, and the parity gate on the test split (teacher-forced agreement >= 98%, exact match
   and chrF within 1 point of PyTorch).
2. A ~100M-parameter Llama shape (`SHAPES["100m"]` of models/decoder.py at a 32k vocabulary, random weights: speed
   does not depend on the weights), built and quantized by the same code.

For each: time to first token and decode tokens/s at batch 1 (and `--batches`), every row forced to `--new`
tokens after a `--prompt`-token prompt, greedy, KV cache on both sides; speed-up over PyTorch eager. PyTorch and
ONNX Runtime get the same thread count (`--threads`: torch.set_num_threads, OMP_NUM_THREADS and ORT's
intra_op_num_threads). The backends run in `--rounds` rounds per batch size, each once per round (`--iters` timed
runs after a warm-up), the order rotated every round (`bench/_common.alternating_rounds`); times and tokens/s are
medians over the rounds, each speed-up the median of the rounds' ratios, printed with every round's value. Target:
ORT int8 >= 3x PyTorch eager decode tokens/s at batch 1, parity passed.

    python bench/generation.py [--threads 1] [--model-dir DIR] [--iters 10] [--iters-100m 3] [--rounds 3]
        [--skip-100m] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH, alternating_rounds, load_text, median, ratio_text  # noqa: E402


def _tiny_model(args):
    """The tiny preset's data and instruction-tuned model (trained unless --model-dir is given)."""
    from core.tracking import Tracking
    from flows.config import load_config
    from tasks.kinds.generation.data import prepare_instructions
    from tasks.kinds.generation.pretrain import causal_pretrain
    from tasks.kinds.generation.sft import sft
    from tasks.kinds.generation.tokenizer import train_causal_tokenizer
    from tasks.results import InstructionTunedModel

    overrides = [f"workspace.root={SCRATCH / 'ws'}", *args.set]  # --set: e.g. shorter training for a quick run
    config = load_config(ROOT / "configs" / "tiny-generation.yaml", overrides)
    ws = config.workspace.resolved()
    tracking = Tracking.resolve(config.tracking, ws)
    cfgs = config.stages()
    data = prepare_instructions(cfgs.data, ws)
    if args.model_dir:
        fields = dict.fromkeys(("global_step", "resumed_from_step", "too_long"), 0)
        fields |= dict.fromkeys(("eval_loss", "perplexity", "samples_per_second"), 0.0)
        uri = str(Path(args.model_dir).resolve())
        model = InstructionTunedModel(uri=uri, base_model="--model-dir", method="full", mlflow_run_id="none", **fields)
        return config, ws, tracking, data, model
    t0 = time.perf_counter()
    print("training the tiny preset (pretraining, then instruction tuning) ...", flush=True)
    tokenizer = train_causal_tokenizer(cfgs.tokenizer, data, ws)
    decoder = causal_pretrain(cfgs.pretrain, data, tokenizer, tracking, ws)
    model = sft(cfgs.finetune, data, tokenizer, decoder, tracking, ws)
    print(f"trained in {time.perf_counter() - t0:.0f} s: validation answer perplexity {model.perplexity:.3f}")
    return config, ws, tracking, data, model


def _model_100m(tokenizer_dir: Path) -> Path:
    """The 100m shape with random weights, saved with the tiny tokenizer (its ids fit the 32k vocabulary)."""
    from transformers import AutoTokenizer

    from models.decoder import SHAPES, build_causal_lm

    path = SCRATCH / "llama-100m-random"
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = build_causal_lm(SHAPES["100m"], 32000, tok.pad_token_id, tok.eos_token_id)
    print(f"100m shape: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", flush=True)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def _speed(model_dir: Path, graphs: dict[str, Path], args, batches: list[int], iters: int) -> list[dict]:
    """Time to first token and decode tokens/s of every backend (the stage's timing code), in rotated rounds."""
    import numpy as np

    from models.generator import TextGenerator
    from models.onnx_decoder import OrtDecoder
    from tasks.kinds.generation.optimize import latency_row, torch_timed

    model, new = TextGenerator(model_dir).model, args.new
    runners = {"pytorch": lambda r: torch_timed(model, r, new)}
    for v, path in graphs.items():
        decoder = OrtDecoder(path, args.threads)
        runners[f"ort-{v}"] = lambda r, d=decoder: d.timed_generate(r, new, min_new_tokens=new)[1:]
    rng, table = np.random.default_rng(0), []
    for batch in batches:
        rows = rng.integers(8, model.config.vocab_size, size=(batch, args.prompt)).tolist()  # past special tokens
        sides = {
            name: (lambda run=run, rows=rows: latency_row("x", run, rows, new, iters)) for name, run in runners.items()
        }
        results = alternating_rounds(sides, args.rounds)
        for name in runners:
            ratios = [r[name]["decode_tokens_per_s"] / r["pytorch"]["decode_tokens_per_s"] for r in results]
            row = {"backend": name, "batch": batch, "decode_speedup": median(ratios), "rounds": ratio_text(ratios)}
            table.append(row | {k: median([r[name][k] for r in results]) for k in ("ttft_ms", "decode_tokens_per_s")})
    return table


def _print(title: str, rows: list[dict], note: str) -> None:
    print(f"\n### {title}\n\n{note}\n")
    print(
        "| backend | batch | time to first token (ms) | decode tokens/s | vs PyTorch eager (median of rounds; each) |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['batch']} | {r['ttft_ms']:.1f} | {r['decode_tokens_per_s']:.1f} | {r['rounds']} |"
        )
    print(load_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads (equal).")
    parser.add_argument("--model-dir", help="An instruction-tuned tiny-preset model (default: train one here).")
    parser.add_argument("--prompt", type=int, default=32, help="Prompt tokens.")
    parser.add_argument("--new", type=int, default=64, help="New tokens per row.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1], help="Batch sizes (1 is the target's).")
    parser.add_argument("--iters", type=int, default=10, help="Timed runs per backend, tiny preset.")
    parser.add_argument("--iters-100m", type=int, default=3, help="Timed runs per backend, 100m shape.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per batch size; speed-ups are medians of rounds.")
    parser.add_argument("--skip-100m", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="a preset override, e.g. sft.epochs=1")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from models.onnx_decoder import graph_size_mb
    from tasks.kinds.generation.optimize import OptimizeGenerationConfig, build_variants, optimize_generation
    from tasks.results import Variant  # noqa: F401  (the stage's import graph, loaded before timing)

    config, ws, tracking, data, model = _tiny_model(args)
    result = optimize_generation(OptimizeGenerationConfig(), data, model, tracking, ws)
    graphs = {v: Path(result.uri) / v for v in ("fp32", "int8") if (Path(result.uri) / v).exists()}
    parity = ", ".join(
        f"{v}: agreement {p.agreement:.2%}, exact match {p.exact_match:.3f} (drop {p.exact_match_drop:+.2f} pt), "
        f"chrF {p.chrf:.2f} (drop {p.chrf_drop:+.2f}), {'passed' if p.passed else 'FAILED'}"
        for v, p in result.parity.items()
    )
    ref = result.reference
    note = (
        f"{args.threads} thread(s) each side; prompt {args.prompt} tokens, {args.new} new tokens; PyTorch exact match "
        f"{ref['exact_match']:.3f}, chrF {ref['chrf']:.2f} on {result.eval_size} test chats; {parity}; "
        f"serves: {result.variant}; sizes MB {result.sizes_mb}"
    )
    rows = _speed(Path(model.uri), graphs, args, args.batches, args.iters)
    _print("tiny preset (configs/tiny-generation.yaml), instruction-tuned", rows, note)
    if args.skip_100m:
        return
    big = _model_100m(Path(model.uri))
    t0 = time.perf_counter()
    built, rejected = build_variants(OptimizeGenerationConfig(), big, SCRATCH / "graphs-100m")
    sizes = {v: graph_size_mb(p) for v, p in built.items()}
    print(f"built {sorted(built)} in {time.perf_counter() - t0:.0f} s (sizes MB {sizes}); rejected: {rejected}")
    rows = _speed(big, built, args, args.batches, args.iters_100m)
    _print("~100M-parameter Llama shape (random weights)", rows, f"{args.threads} thread(s) each side, no parity gate")


if __name__ == "__main__":
    main()
