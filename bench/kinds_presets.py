"""The entities and answers presets on the shared data, seeds side by side, beside the baselines their runs judged.

Each (preset, seed) is `zero2one run --config configs/PRESET.yaml --workspace WORK/PRESET-sSEED/ws` as a user runs
it, with the training seeds set (`*_finetune.optim.seed`, and `pretrain.optim.seed` for a from-scratch preset; the
data split keeps its own seed, so every run is judged on the same test questions or sentences). The table is read
back from what the run registered in MLflow, not recomputed: the test score and the baseline the evaluation
compared it with, the gate's verdict, the graph that serves and every graph's parity with PyTorch, the wall time and
the CPU seconds of the run (what it costs whatever else shares the cores) with the load average at its end.

A workspace that already holds a registered version is read, not rerun: `--table` prints what is there.

    python bench/kinds_presets.py --work DIR [--presets ner,ner-scratch,qa,qa-scratch] [--seeds 0,1,2] [--table]
        [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT  # noqa: E402

PRESETS = ("ner", "ner-scratch", "qa", "qa-scratch")
BASELINE = {"entities": ("crf_f1", "CRF"), "answers": ("lexical_f1", "lexical")}


def seed_settings(preset: str, seed: int) -> list[str]:
    from flows.config import load_config

    config = load_config(ROOT / "configs" / f"{preset}.yaml")
    section = "entity_finetune" if config.task == "entities" else "answer_finetune"
    return [f"{section}.optim.seed={seed}"] + ([f"pretrain.optim.seed={seed}"] if config.pretrain.enabled else [])


def run(preset: str, seed: int, folder: Path, extra: list[str]) -> dict:
    """One preset run in its own workspace and Prefect home; wall and CPU seconds of the child."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = [x for s in seed_settings(preset, seed) + extra for x in ("--set", s)]
    command = [str(Path(sys.executable).parent / "zero2one"), "run", "--config", f"configs/{preset}.yaml"]
    command += ["--workspace", str(folder / "ws"), *settings]
    env = os.environ | {"PREFECT_HOME": str(folder / "prefect")}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with open(folder / "log", "w") as log:
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing = {"exit_code": code, "wall_s": round(time.perf_counter() - start), "cpu_s": round(cpu)}
    timing["load_at_end"] = round(os.getloadavg()[0], 1)
    (folder / "timing.json").write_text(json.dumps(timing))
    return timing


def registered(folder: Path) -> dict | None:
    """What the run registered: version 1 of its model, its evaluation and optimize runs' metrics."""
    import mlflow

    db = folder / "ws" / "mlflow.db"
    if not db.exists():
        return None
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    models = client.search_registered_models()
    if not models:
        return None
    version = client.get_model_version(models[0].name, "1")
    tags = version.tags
    metrics = {k: client.get_run(tags[f"zero2one.lineage.{k}_run_id"]).data.metrics for k in ("eval", "optimize")}
    return {"tags": tags, "eval": metrics["eval"], "optimize": metrics["optimize"]}


def row(preset: str, seed: int, folder: Path) -> dict | None:
    found = registered(folder)
    if found is None:
        return None
    tags, kind = found["tags"], found["tags"]["zero2one.task"]
    metric = next(k for k in tags if k.startswith("zero2one.metrics.test_") and k.endswith("_f1"))
    key, name = BASELINE[kind]
    parity = {k.removeprefix("agreement_"): round(v, 4) for k, v in found["optimize"].items() if "agreement" in k}
    timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else timed(folder)
    return {
        "preset": preset, "seed": seed, "f1": float(tags[metric]),
        "baseline": name, "baseline_f1": round(found["eval"].get(key, float("nan")), 4),
        "gate": tags.get("zero2one.gate.verdict"), "serves": tags.get("zero2one.metrics.served_runtime"),
        "parity": parity, **timing,
    }  # fmt: skip


def timed(folder: Path) -> dict:
    """Wall and CPU seconds of a run made by hand under `/usr/bin/time -v`, read from its log ({} if none)."""
    log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
    found = dict(re.findall(r"\t(Elapsed \(wall clock\) time|User time|System time).*?: ([\d:.]+)\n", log))
    if len(found) < 3:
        return {}
    wall = sum(float(x) * 60**i for i, x in enumerate(reversed(found.pop("Elapsed (wall clock) time").split(":"))))
    return {"wall_s": round(wall), "cpu_s": round(sum(float(x) for x in found.values()))}


def table(rows: list[dict]) -> str:
    lines = ["| preset | seed | test F1 | baseline F1 | gate | serves | parity with PyTorch | wall | CPU-s | load |"]
    lines.append("|---|---:|---:|---:|---|---|---|---:|---:|---:|")
    for r in rows:
        parity = ", ".join(f"{v} {a:.1%}" for v, a in r["parity"].items())
        wall = f"{r['wall_s'] // 60} min {r['wall_s'] % 60:02d} s" if "wall_s" in r else "-"
        lines.append(
            f"| {r['preset']} | {r['seed']} | {r['f1']:.4f} | {r['baseline']} {r['baseline_f1']:.4f} | {r['gate']} | "
            f"{r['serves']} | {parity} | {wall} | {r.get('cpu_s', '-')} | {r.get('load_at_end', '-')} |"
        )
    for preset in dict.fromkeys(r["preset"] for r in rows):
        scores = [r["f1"] for r in rows if r["preset"] == preset]
        spread = f", sd {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
        lines.append(f"\n{preset}: mean test F1 {statistics.mean(scores):.4f} over {len(scores)} seed(s){spread}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="one folder per run goes here")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--seeds", default="0")
    p.add_argument("--table", action="store_true", help="only read what the workspaces hold")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more setting, every run")
    a = p.parse_args()
    rows = []
    for preset in a.presets.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            folder = a.work / f"{preset}-s{seed}"
            if not a.table and registered(folder) is None:
                print(f"{preset} seed {seed}: running in {folder}", flush=True)
                print(f"  {run(preset, seed, folder, a.set)}", flush=True)
            found = row(preset, seed, folder)
            if found is not None:
                rows.append(found)
    print(table(rows))


if __name__ == "__main__":
    main()
