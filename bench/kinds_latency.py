"""Serving latency of the entities and answers kinds: PyTorch vs the ONNX graphs the optimize stage built (#26).

Times what `/predict` runs: a tagger on 1 or 8 WNUT-17 test sentences, a reader's forward pass on 1 or 8 windows
of test contexts. The sides take turns each round, the order rotated (`alternating_rounds`), on the same
inputs and threads; medians of the per-round times and of the per-round ratios to PyTorch. Point it at the
workspaces of finished preset runs (`zero2one run --config configs/ner.yaml --workspace WS`):

    python bench/kinds_latency.py --entities WS1 --answers WS2 [--rounds 7] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import WNUT_TEST, alternating_rounds, load_text, median, newest, ratio_text, round_ratios  # noqa: E402


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sides(models: dict, batches: dict[int, list], call) -> dict:
    """One side per (model, batch size): the seconds a call takes, averaged over the side's calls (`inputs`)."""
    sides = {}
    for name, model in models.items():
        for b, inputs in batches.items():
            sides[f"{name}@b{b}"] = lambda m=model, x=inputs: _timed(lambda: call(m, x)) / len(x)
    return sides


def _report(kind: str, results: list[dict], names: list[str], sizes: list[int]) -> dict:
    out = {}
    for b in sizes:
        row = {n: round(1000 * median([r[f"{n}@b{b}"] for r in results]), 1) for n in names}
        ratios = {n: ratio_text(round_ratios(results, f"pytorch@b{b}", f"{n}@b{b}")) for n in names if n != "pytorch"}
        print(f"{kind} batch {b}: ms {row}; PyTorch time / graph time {ratios}", flush=True)
        out[f"batch_{b}"] = {"ms": row, "speedup_vs_pytorch": ratios}
    return out


def entities(ws: Path, rounds: int, threads: int) -> dict:
    from models.token_classifier import Tagger
    from tasks.kinds.entities.reader import read_entities

    model_dir, onnx_dir = newest(ws, "finetune_entities/*/model"), newest(ws, "optimize_entities/*/onnx")
    models = {"pytorch": Tagger.load(model_dir, threads=threads)}
    models |= {g: Tagger.load(model_dir, onnx_dir / f, threads=threads) for g, f in GRAPHS["entities"].items()}
    words = [s.words for s in read_entities(WNUT_TEST).sentences[:64]]
    batches = {1: [words[:1], words[1:2]], 8: [words[:8], words[8:16]]}  # two calls a side: less luck per round
    for m in models.values():
        m.tag(words[:8])  # warm-up
    results = alternating_rounds(_sides(models, batches, lambda tagger, calls: [tagger.tag(x) for x in calls]), rounds)
    return _report("entities", results, list(models), list(batches))


def answers(ws: Path, rounds: int, threads: int) -> dict:
    """The reader's forward pass on 1 and 8 windows (a COVID-QA question reads ~25 of 384 tokens; decoding is the
    same code whichever runtime gave the logits)."""
    import datasets

    from models.span_reader import SpanReader

    model_dir, onnx_dir = newest(ws, "finetune_answers/*/model"), newest(ws, "optimize_answers/*/onnx")
    test = datasets.load_from_disk(str(newest(ws, "answer_data/*/splits")))["test"].select(range(4))
    models = {"pytorch": SpanReader.load(model_dir, threads=threads)}
    models |= {g: SpanReader.load(model_dir, onnx_dir / f, threads=threads) for g, f in GRAPHS["answers"].items()}
    wins = models["pytorch"].windows(test["question"], test["context"])
    batches = {1: [wins[:1], wins[1:2]], 8: [wins[:8], wins[8:16]]}
    print(f"answers: windows of {[len(w.ids) for w in wins[:16]]} tokens", flush=True)
    for m in models.values():
        m.window_logits(wins[:8])  # warm-up
    results = alternating_rounds(_sides(models, batches, lambda m, calls: [m.window_logits(w) for w in calls]), rounds)
    return _report("answers", results, list(models), list(batches))


GRAPHS = {  # the files each optimize stage writes
    "entities": {
        "onnx-fp32": "model.fused.onnx", "onnx-int8": "model.int8.onnx", "onnx-int8-weights": "model.int8-weights.onnx",
    },
    "answers": {
        "onnx-fp32": "model.onnx", "onnx-int8": "model_int8.onnx", "onnx-int8-weights": "model_int8-weights.onnx",
    },
}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entities", type=Path, help="workspace of a finished configs/ner.yaml run")
    p.add_argument("--answers", type=Path, help="workspace of a finished configs/qa.yaml run")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    report = {"load_before": load_text(), "threads": a.threads, "rounds": a.rounds}
    print(report["load_before"], flush=True)
    if a.entities:
        report["entities"] = entities(a.entities, a.rounds, a.threads)
    if a.answers:
        report["answers"] = answers(a.answers, a.rounds, a.threads)
    report["load_after"] = load_text()
    print(report["load_after"], flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
