"""Why the TF-IDF baseline has character n-grams: its feature sets scored on the SMS Spam Collection's test split.

The data stage splits `../shared/data/sms_spam.csv` exactly as `bench/quality.py`'s pipeline runs do (same source,
columns and `data.seed`), then logistic regressions are fitted on train and scored on test (macro-F1; the classes
are 87/13): word 1-2-grams alone with scikit-learn's default C=1, word alone with C tuned on validation, `char_wb`
1-4-grams alone (tuned), and the baseline the evaluate stage trains (`models/baseline.fit`: both, C tuned). A model
has to beat the strongest of these, which is the one the gate uses. Seconds of CPU, no training of ours.

    python bench/baseline_features.py [--data PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH  # noqa: E402

SMS = ROOT.parent / "shared" / "data" / "sms_spam.csv"


def _splits(data: Path):
    from flows.config import load_config
    from tasks.data.loaders import load_splits
    from tasks.data.prepare import prepare_data

    overrides = [f"data.source={data}", "data.text_column=message", "data.label_column=class"]
    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={SCRATCH / 'ws'}", *overrides])
    return load_splits(prepare_data(config.data, config.workspace.resolved()))


def _one_block(name: str, splits, grid) -> tuple[float, float]:
    """(test macro-F1, C) of one TF-IDF block of the baseline alone, C chosen on validation among `grid`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from models.baseline import BLOCKS

    analyzer, ngrams = BLOCKS[name]
    vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)
    x_train = vec.fit_transform(list(splits["train"]["text"]))
    x_val, x_test = (vec.transform(list(splits[s]["text"])) for s in ("validation", "test"))
    best = max(
        (LogisticRegression(C=c, max_iter=2000).fit(x_train, splits["train"]["label"]) for c in grid),
        key=lambda clf: f1_score(splits["validation"]["label"], clf.predict(x_val), average="macro"),
    )
    return f1_score(splits["test"]["label"], best.predict(x_test), average="macro"), best.C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SMS, help="the SMS spam CSV (class, message columns)")
    args = parser.parse_args()
    from sklearn.metrics import f1_score

    from models.baseline import C_GRID, fit

    splits = _splits(args.data)
    print({name: len(split) for name, split in splits.items()})
    rows = [
        ("word 1-2-grams, default C", *_one_block("word", splits, (1.0,))),
        ("word 1-2-grams, C tuned", *_one_block("word", splits, C_GRID)),
        ("char_wb 1-4-grams, C tuned", *_one_block("char", splits, C_GRID)),
    ]
    train, val, test = splits["train"], splits["validation"], splits["test"]
    union, clf, _ = fit(train["text"], train["label"], val["text"], val["label"])
    union_f1 = f1_score(test["label"], clf.predict(union.transform(list(test["text"]))), average="macro")
    rows.append(("word + char_wb (the evaluate stage's baseline)", union_f1, clf.C))
    print("| features | C | test macro-F1 |\n|---|---:|---:|")
    for name, f1, c in rows:
        print(f"| {name} | {c:g} | {f1:.4f} |")


if __name__ == "__main__":
    main()
