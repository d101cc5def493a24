"""How noisy is "tuned beats untuned"? A paired bootstrap of corpus chrF over an evaluation's prompts.

Reads the `generations.jsonl` the evaluate_generation stage writes (one row a prompt: prompt, reference, and one
column per generator: model, before_sft, retrieval), resamples the prompts with replacement, and reports each
generator's chrF and mean answer length, then the model's chrF minus each other generator's with a 95% interval and
the share of resamples in which the model is ahead. sacrebleu computes chrF exactly as the stage does.

    python bench/chrf_bootstrap.py WORKSPACE/evaluations/generation/<key>/generations.jsonl [--resamples 500]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from sacrebleu.metrics import CHRF


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("generations", type=Path)
    p.add_argument("--resamples", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = [json.loads(line) for line in args.generations.read_text().splitlines() if line.strip()]
    chrf = CHRF()

    def score(column: str, idx: list[int]) -> float:
        return chrf.corpus_score([rows[i][column] for i in idx], [[rows[i]["reference"] for i in idx]]).score

    every = list(range(len(rows)))
    columns = [c for c in rows[0] if c not in ("prompt", "reference")]
    print(f"{len(rows)} prompts; reference mean length {statistics.mean(len(r['reference']) for r in rows):.0f} chars")
    for c in columns:
        print(f"{c}: chrF {score(c, every):.2f}, mean length {statistics.mean(len(r[c]) for r in rows):.0f} chars")
    rng = random.Random(args.seed)
    samples = [[rng.randrange(len(rows)) for _ in every] for _ in range(args.resamples)]
    lo, hi = int(0.025 * args.resamples), int(0.975 * args.resamples) - 1
    for other in (c for c in columns if c != "model"):
        diffs = sorted(score("model", s) - score(other, s) for s in samples)
        ahead = sum(d > 0 for d in diffs) / len(diffs)
        print(
            f"model - {other}: {score('model', every) - score(other, every):+.2f} chrF, "
            f"95% [{diffs[lo]:+.2f}, {diffs[hi]:+.2f}], model ahead in {ahead:.0%} of resamples"
        )


if __name__ == "__main__":
    main()
