"""Inference latency, side by side in one run: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8.

1. The tiny preset, trained here as `make demo` trains it (or `--model-dir`: a fine-tuned model of the
   same demo data), then our `optimize` stage: export, fusions, dynamic int8, parity on the test split.
2. A BERT-base-shaped model (`configs/base.yaml`, random init: latency does not depend on the
   weights), exported, fused and quantized by the same code.

For each: p50/p95 at batch 1 and 32, speedup of ORT fp32 and ORT int8 over PyTorch eager, and
prediction agreement with PyTorch. All backends run on CPU with the same thread count, in `--rounds`
rounds per batch size, each backend once per round (its share of the iterations), the order rotated every
round (`bench/_common.alternating_rounds`); p50/p95 are medians over the rounds and each speedup is the
median of the rounds' PyTorch p50 / backend p50, printed with every round's value. Target: ORT int8 >= 3x
PyTorch eager at batch 1 with >= 99% agreement on the tiny model's test split.

    python bench/inference.py [--threads 1] [--seq 32] [--iters 200] [--base-iters 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH, alternating_rounds, load_text, median, ratio_text  # noqa: E402


def _tiny_model(args):
    """The tiny preset's data and fine-tuned model (trained unless --model-dir is given)."""
    from core.tracking import Tracking
    from flows.config import load_config
    from tasks.data.prepare import prepare_data
    from tasks.kinds.classification.finetune import finetune
    from tasks.results import FinetunedModel
    from tasks.training.pretrain import pretrain
    from tasks.training.tokenizer import train_tokenizer

    overrides = [f"workspace.root={SCRATCH / 'ws'}", f"pretrain.max_steps={args.pretrain_steps}"]
    config = load_config(ROOT / "configs" / "tiny.yaml", [*overrides, f"finetune.epochs={args.epochs}"])
    ws = config.workspace.resolved()
    tracking = Tracking.resolve(config.tracking, ws)
    data = prepare_data(config.data, ws)
    if args.model_dir:
        model = FinetunedModel(
            uri=str(Path(args.model_dir).resolve()),
            base_model="--model-dir",
            method="full",
            labels=data.labels,
            global_step=0,
            resumed_from_step=0,
            best_metric=0.0,
            metric="macro_f1",
            mlflow_run_id="none",
        )
        return config, ws, tracking, data, model
    t0 = time.perf_counter()
    print(f"training the tiny preset ({args.pretrain_steps} pretraining steps, {args.epochs} epochs) ...", flush=True)
    tokenizer = train_tokenizer(config.tokenizer_for_run(), data, ws)
    encoder = pretrain(config.pretrain, data, tokenizer, tracking, ws)
    model = finetune(config.finetune, data, tokenizer, encoder, tracking, ws)
    print(f"trained in {time.perf_counter() - t0:.0f} s: validation {model.metric} {model.best_metric:.3f}")
    return config, ws, tracking, data, model


def _base_model(tokenizer_dir: Path, labels: list[str]) -> Path:
    """A BERT-base-shaped classifier with random weights, saved with the tiny tokenizer (ids fit its vocabulary)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    from flows.config import load_config

    base = load_config(ROOT / "configs" / "base.yaml")
    config = base.pretrain.shape.to_bert_config(
        base.tokenizer.vocab_size,
        pad_token_id=0,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )
    path = SCRATCH / "bert-base-random"
    BertForSequenceClassification(config).save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(path))
    return path


def _latency(model_dir: Path, graphs: dict[str, Path], args, iters_b1: int, iters_b32: int) -> list[dict]:
    """Every backend at batch 1 and 32, in rotated rounds; per-round speedups over PyTorch eager."""
    from models.classifier import TextClassifier
    from models.onnx_classifier import OnnxClassifier
    from tasks.optimize import latency_rows, torch_runner

    reference = TextClassifier(model_dir)
    onnx = {v: OnnxClassifier(p, model_dir, threads=args.threads) for v, p in graphs.items()}
    runners = {"pytorch": torch_runner(reference.model), **{f"ort-{v}": c.run for v, c in onnx.items()}}
    names, vocab = onnx["fp32"].input_names, reference.model.config.vocab_size
    rows = []
    for batch, iters in ((1, iters_b1), (32, iters_b32)):
        per_round = max(iters // args.rounds, 1)

        def side(run, batch=batch, per_round=per_round):
            return lambda: latency_rows({"x": run}, names, vocab, [(batch, args.seq)], args.warmup, per_round)[0]

        results = alternating_rounds({name: side(run) for name, run in runners.items()}, args.rounds)
        for name in runners:
            ratios = [r["pytorch"]["p50_ms"] / r[name]["p50_ms"] for r in results]
            row = {"backend": name, "batch": batch, "speedup": median(ratios), "rounds": ratio_text(ratios)}
            rows.append(row | {k: median([r[name][k] for r in results]) for k in ("p50_ms", "p95_ms")})
    return rows


def _print(title: str, rows: list[dict], sizes: dict[str, float], agreement: dict[str, float], note: str) -> None:
    print(f"\n== {title} ==")
    print(f"{'backend':<10}{'batch':>6}{'p50 ms':>10}{'p95 ms':>10}{'speedup':>9}{'size MB':>9}")
    for r in rows:
        size = sizes.get(r["backend"], float("nan"))
        print(
            f"{r['backend']:<10}{r['batch']:>6}{r['p50_ms']:>10.3f}{r['p95_ms']:>10.3f}{r['speedup']:>8.2f}x{size:>9.1f}"
        )
    print(f"agreement with PyTorch {note}: " + ", ".join(f"{v} {a:.2%}" for v, a in agreement.items()))
    for r in rows:
        if r["backend"] != "pytorch":
            print(f"  {r['backend']} b{r['batch']} speedup, median of rounds (each round): {r['rounds']}")


def _speedup(rows: list[dict], backend: str, batch: int) -> float:
    return next(r["speedup"] for r in rows if r["backend"] == backend and r["batch"] == batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch and ONNX Runtime alike.")
    parser.add_argument("--seq", type=int, default=32, help="Tokens per text (demo reviews: median 17, max 34).")
    parser.add_argument("--iters", type=int, default=200, help="Timed runs per backend, tiny model, batch 1.")
    parser.add_argument("--base-iters", type=int, default=20, help="Timed runs per backend, BERT-base, batch 1.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per batch size; speedups are medians of rounds.")
    parser.add_argument("--base-eval", type=int, default=200, help="Test texts for the BERT-base agreement.")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=6)
    parser.add_argument("--model-dir", help="A fine-tuned tiny model of the demo data (skips training).")
    args = parser.parse_args()

    import torch

    from models.classifier import TextClassifier
    from models.onnx_classifier import OnnxClassifier
    from tasks.data.loaders import load_splits
    from tasks.optimize import FILES, LatencyConfig, OptimizeConfig, build_variants, check_parity, optimize

    # One thread by default: on a small shared machine, threads contending for busy cores make PyTorch erratic.
    torch.set_num_threads(args.threads)
    _, ws, tracking, data, model = _tiny_model(args)

    # 1. Tiny: the optimize stage itself (parity on the whole test split), then the thorough timing.
    quick = LatencyConfig(batch_sizes=[1], sequence_lengths=[args.seq], warmup=0, iterations=1)
    stage = optimize(OptimizeConfig(latency=quick), data, model, tracking, ws)
    graphs = {v: Path(stage.uri, name) for v, name in FILES.items() if f"ort-{v}" in stage.sizes_mb}
    tiny_rows = _latency(Path(model.uri), graphs, args, args.iters, max(args.iters // 10, 5))
    tiny_agreement = {v: p.agreement for v, p in stage.parity.items()}
    _print(
        f"tiny preset, seq {args.seq}, {args.threads} thread(s), fused {stage.fused_ops}",
        tiny_rows,
        stage.sizes_mb,
        tiny_agreement,
        f"on the test split ({stage.eval_size} texts); the stage serves {stage.variant}",
    )

    # 2. BERT-base shape, random init.
    print("\nexporting, fusing and quantizing a BERT-base-shaped model ...", flush=True)
    base_dir = _base_model(Path(model.uri), data.labels)
    workdir = SCRATCH / "bert-base-onnx"
    workdir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    cfg = OptimizeConfig()
    built, rejected, fused = build_variants(cfg, base_dir, workdir)
    print(f"built in {time.perf_counter() - t0:.0f} s: {fused} {rejected or ''}")
    base_rows = _latency(base_dir, built, args, args.base_iters, max(args.base_iters // 5, 3))
    texts = list(load_splits(data)["test"]["text"])[: args.base_eval]
    y_true = list(load_splits(data)["test"]["label"])[: args.base_eval]
    reference = TextClassifier(base_dir).logits(texts)
    base_agreement = {
        v: check_parity(cfg, reference, OnnxClassifier(p, base_dir).logits(texts), y_true, data.labels).agreement
        for v, p in built.items()
    }
    base_sizes = {"pytorch": round((base_dir / "model.safetensors").stat().st_size / 2**20, 1)}
    base_sizes |= {f"ort-{v}": round(p.stat().st_size / 2**20, 1) for v, p in built.items()}
    _print(
        f"BERT-base shape (random init), seq {args.seq}, {args.threads} thread(s)",
        base_rows,
        base_sizes,
        base_agreement,
        f"on {len(texts)} test texts (random weights: near-tied logits, not a quality number)",
    )

    print("\n== speedup over PyTorch eager (p50) ==")
    for name, rows in (("tiny", tiny_rows), ("bert-base", base_rows)):
        cells = [f"{b} b{n} {_speedup(rows, b, n):.2f}x" for b in ("ort-fp32", "ort-int8") for n in (1, 32)]
        print(f"{name:<10}" + "  ".join(cells))
    int8_b1, agree = _speedup(tiny_rows, "ort-int8", 1), tiny_agreement.get("int8", 0.0)
    ok = int8_b1 >= 3 and agree >= 0.99
    verdict = "met" if ok else "NOT met"
    print(f"target (tiny, int8 >= 3x at batch 1, >= 99% agreement): {int8_b1:.3f}x, {agree:.2%} -> {verdict}")
    print(load_text())


if __name__ == "__main__":
    main()
