"""Named entities on WNUT-17 (#26): memorization and CRF baselines beside all-MiniLM-L6-v2 fine-tuned, then ONNX.

Train on train.conll, pick (CRF c1/c2, the model's best epoch) on dev.conll, report strict entity P/R/F1 (seqeval,
IOB2) on test.conll, micro, macro and per type. Then the seed-0 model exported to ONNX (fused fp32 and dynamic int8):
int8's token-label agreement with PyTorch on every test word, int8's test F1, and the latency of fp32 vs int8 at
batch 1 and 8 (same threads, the two take turns each round, medians). Every step prints the 1-minute load average
and its process CPU seconds: the machine is shared, and CPU seconds are what a run costs whatever else runs.

A seed whose folder already holds a finished model is evaluated, not retrained; `--adopt` takes the best epoch the
Trainer has saved so far when a run had to be stopped (the report says so).

    python bench/entities.py [--data DIR] [--work DIR] [--seeds 0,1,2] [--steps baselines,model,onnx] [--adopt]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from tasks.kinds.entities.baselines import CRFConfig, CRFTagger, Memorizer  # noqa: E402
from tasks.kinds.entities.metrics import entity_scores  # noqa: E402
from tasks.kinds.entities.reader import read_folder  # noqa: E402
from tasks.kinds.entities.train import META, EntityTrainConfig, fit_length, train_entities  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner" / "wnut17"
CRF_GRID = [(0.0, 0.01), (0.0, 0.1), (0.1, 0.1)]  # c1, c2; picked on dev (measured: test F1 moves 0.12..0.15)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> float:
    return os.getloadavg()[0]


def baselines(data) -> list[dict]:
    train, dev, test = data["train"].sentences, data["dev"].sentences, data["test"].sentences
    gold, words = [s.tags for s in test], [s.words for s in test]
    t0, c0 = time.perf_counter(), cpu()
    rows = [entity_scores(gold, Memorizer().fit(train).predict(words)).row("memorization")]
    best = None
    for c1, c2 in CRF_GRID:
        crf = CRFTagger(CRFConfig(c1=c1, c2=c2)).fit(train)
        f1 = entity_scores([s.tags for s in dev], crf.predict([s.words for s in dev])).micro.f1
        print(f"crf c1={c1} c2={c2}: dev micro F1 {f1:.4f}", flush=True)
        if best is None or f1 > best[0]:
            best = (f1, c1, c2, crf)
    rows.append(entity_scores(gold, best[3].predict(words)).row(f"crf (c1={best[1]}, c2={best[2]})"))
    rows[-1] |= {"dev_f1": round(best[0], 4)}
    for r in rows:
        r |= {"seconds": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu() - c0, 1), "load1": load()}
    return rows


def adopt(seed_dir: Path, data, cfg: EntityTrainConfig) -> None:
    """Finish a stopped run: the best epoch the Trainer saved becomes the model (tokenizer and META written)."""
    from transformers import AutoConfig, AutoTokenizer

    states = sorted(seed_dir.glob("trainer/checkpoint-*/trainer_state.json"), key=lambda p: p.stat().st_mtime)
    state = json.loads(states[-1].read_text())
    best = Path(state["best_model_checkpoint"])
    for name in ("config.json", "model.safetensors"):
        shutil.copy(best / name, seed_dir / name)
    tok = AutoTokenizer.from_pretrained(cfg.checkpoint)
    tok.save_pretrained(str(seed_dir))
    config = AutoConfig.from_pretrained(str(seed_dir))
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    meta = {"labels": labels, "max_length": fit_length(tok, 512, data["train"].sentences, None), "overlap": 16}
    evals = [h for h in state["log_history"] if "eval_f1" in h]
    meta |= {"adopted": str(best), "epochs_done": state["epoch"], "epochs": cfg.epochs, "seed": cfg.seed}
    meta |= {"best_dev_f1": state["best_metric"], "dev_f1_by_epoch": [round(h["eval_f1"], 4) for h in evals]}
    (seed_dir / META).write_text(json.dumps(meta, indent=1))


def model_rows(data, work: Path, seeds: list[int], epochs: float, take: bool) -> list[dict]:
    from models.token_classifier import Tagger
    from tasks.kinds.entities.train import default_checkpoint

    test = data["test"].sentences
    rows = []
    for seed in seeds:
        seed_dir = work / f"seed{seed}"
        cfg = EntityTrainConfig(checkpoint=default_checkpoint(), seed=seed, epochs=epochs)
        if take and not (seed_dir / META).exists():
            adopt(seed_dir, data, cfg)
        c0, l0 = cpu(), load()
        meta = json.loads((seed_dir / META).read_text()) if (seed_dir / META).exists() else None
        if meta is None:
            meta = train_entities(data["train"].sentences, data["dev"].sentences, seed_dir, cfg)
            meta |= {"train_cpu_s": round(cpu() - c0, 1), "load1_start": l0, "load1_end": load()}
            (seed_dir / META).write_text(json.dumps(meta, indent=1))
        t1 = time.perf_counter()
        tagged = Tagger.load(seed_dir).tag([s.words for s in test])
        row = entity_scores([s.tags for s in test], [t for t, _ in tagged]).row(f"all-MiniLM-L6-v2 seed {seed}")
        row |= {"test_tag_seconds": round(time.perf_counter() - t1, 1), "load1": load()}
        rows.append(row | {k: meta.get(k) for k in ("best_dev_f1", "dev_f1_by_epoch", "train_seconds", "train_cpu_s",
                                                     "epochs", "epochs_done", "adopted", "max_length")})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def onnx_rows(data, work: Path, threads: int) -> dict:
    """int8 per channel (the default) and per tensor, each against PyTorch fp32 on every test word, and timed."""
    from models.token_classifier import Tagger
    from tasks.kinds.entities.onnx_int8 import agreement, export_token_classifier, latency, quantize_int8

    seed_dir, test = work / "seed0", data["test"].sentences
    files = export_token_classifier(seed_dir, work / "onnx")
    per_tensor = quantize_int8(files.fp32, work / "onnx" / "model.int8-per-tensor.onnx", per_channel=False)
    words, gold = [s.words for s in test], [s.tags for s in test]
    reference = [t for t, _ in Tagger.load(seed_dir, threads=threads).tag(words)]
    taggers = {name: Tagger.load(seed_dir, path, threads) for name, path in
               (("fp32", files.fp32), ("int8", files.int8), ("int8_per_tensor", per_tensor))}  # fmt: skip
    out: dict = {"fused_ops": files.fused_ops, "threads": threads}
    for name, tagger in taggers.items():
        tags = [t for t, _ in tagger.tag(words)]
        out[name] = {"agreement": agreement(reference, tags), "test": entity_scores(gold, tags).row(name)}
    for batch in (1, 8):
        out[f"latency_b{batch}_s"] = latency(taggers, words[:96], batch, rounds=3) | {"load1": load()}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--work", default="bench-entities")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=float, default=EntityTrainConfig().epochs)
    parser.add_argument("--steps", default="baselines,model,onnx")
    parser.add_argument("--adopt", action="store_true", help="take the best saved epoch of a stopped run")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work, steps = Path(args.work), args.steps.split(",")
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    data = read_folder(args.data)
    if "baselines" in steps:
        results["baselines"] = baselines(data)
        print(json.dumps(results["baselines"], indent=1), flush=True)
    if "model" in steps:
        seeds = [int(s) for s in args.seeds.split(",")]
        results["models"] = model_rows(data, work, seeds, args.epochs, args.adopt)
    if "onnx" in steps:
        results["onnx"] = onnx_rows(data, work, args.threads)
    results_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
