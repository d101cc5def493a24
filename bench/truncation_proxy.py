"""Where a long text's label lives: head vs head_tail truncation, measured with a bag of token n-grams.

A neural fine-tune per setting costs an hour on the shared 2-core machine; this proxy costs seconds. Each text is
tokenized by the pipeline's WordPiece (trained on the train split), cut to a window of W tokens by `head` (the
tokenizer's truncation) or `head_tail` (`models/truncation.py`: first quarter + end), and a TF-IDF over token
1-2-grams + logistic regression (C chosen on validation) is trained and tested on the cut texts. The model sees
exactly the tokens a classifier with that window would see, so the accuracy gap is what each cut keeps of the
label's evidence, not a transformer's score. Also prints the pipeline's own TF-IDF baseline (word + char_wb
n-grams, `models/baseline.py`) and char n-grams alone on the full texts.

    python bench/truncation_proxy.py --data /tmp/zh_reviews.csv [--windows 32,64,128] [--text-column message]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models import baseline  # noqa: E402
from models.truncation import Truncation  # noqa: E402
from tasks.training.tokenizer import TokenizerConfig, _train_wordpiece, choose_cjk  # noqa: E402


def _fit_score(x_train, y_train, x_val, y_val, x_test, y_test, features) -> tuple[float, float]:
    """Features fitted on train, C on validation macro-F1; (test accuracy, test macro-F1)."""
    train = features.fit_transform(x_train)
    val, test = features.transform(x_val), features.transform(x_test)
    best = max(
        (f1_score(y_val, LogisticRegression(C=c, max_iter=2000).fit(train, y_train).predict(val), average="macro"), c)
        for c in baseline.C_GRID
    )
    pred = LogisticRegression(C=best[1], max_iter=2000).fit(train, y_train).predict(test)
    return accuracy_score(y_test, pred), f1_score(y_test, pred, average="macro")


def _token_features() -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=lambda toks: toks + [a + " " + b for a, b in zip(toks, toks[1:], strict=False)], sublinear_tf=True
    )


def _cut(tok, texts: list[str], window: int | None, strategy: str) -> tuple[list[list[str]], float]:
    """Each text's tokens as a classifier with this window sees them (special tokens dropped), and the share cut."""
    ids = tok(texts, verbose=False)["input_ids"]
    if window is None:
        return [tok.convert_ids_to_tokens(i[1:-1]) for i in ids], 0.0
    rule = Truncation.for_window("head_tail", window)
    cut = [rule.cut(i) if strategy == "head_tail" else i[: window - 1] + i[-1:] for i in ids]
    return [tok.convert_ids_to_tokens(i[1:-1]) for i in cut], float(np.mean([len(i) > window for i in ids]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--text-column", default="message")
    parser.add_argument("--label-column", default="class")
    parser.add_argument("--windows", default="32,64,128", help="comma-separated; empty: the full texts only")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed")
    args = parser.parse_args()
    df = pd.read_csv(args.data)
    texts, labels = df[args.text_column].astype(str).tolist(), df[args.label_column].astype(str).tolist()
    tr_x, rest_x, tr_y, rest_y = train_test_split(texts, labels, test_size=0.2, stratify=labels, random_state=args.seed)
    va_x, te_x, va_y, te_y = train_test_split(rest_x, rest_y, test_size=0.5, stratify=rest_y, random_state=args.seed)
    print(f"{args.data} (split seed {args.seed}): {len(tr_x)} train / {len(va_x)} validation / {len(te_x)} test")
    print("| features | window | cut | test texts cut | accuracy | macro-F1 |\n|---|---:|---|---:|---:|---:|")
    acc, f1 = _fit_score(tr_x, tr_y, va_x, va_y, te_x, te_y, baseline.features())
    print(f"| pipeline TF-IDF (word 1-2 + char_wb 1-4) | - | none | 0% | {acc:.4f} | {f1:.4f} |")
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    acc, f1 = _fit_score(tr_x, tr_y, va_x, va_y, te_x, te_y, char)
    print(f"| char_wb 1-4 alone | - | none | 0% | {acc:.4f} | {f1:.4f} |")
    characters, why = choose_cjk(TokenizerConfig(), tr_x)
    tok = _train_wordpiece(tr_x, TokenizerConfig(vocab_size=3000), characters)
    windows = [None] + [int(w) for w in args.windows.split(",") if w]
    for window in windows:
        for strategy in ["none"] if window is None else ["head", "head_tail"]:
            parts = [_cut(tok, x, window, strategy) for x in (tr_x, va_x, te_x)]
            acc, f1 = _fit_score(parts[0][0], tr_y, parts[1][0], va_y, parts[2][0], te_y, _token_features())
            print(
                f"| WordPiece token 1-2-grams | {window or 'all'} | {strategy} | {parts[2][1]:.0%} | "
                f"{acc:.4f} | {f1:.4f} |",
                flush=True,
            )
    print(f"tokenizer: {len(tok)} tokens; {why}")
    if characters:  # the other choice for text without spaces: WordPiece learns runs of ideographs
        sub = _train_wordpiece(tr_x, TokenizerConfig(vocab_size=12000), cjk_characters=False)
        parts = [_cut(sub, x, None, "none") for x in (tr_x, va_x, te_x)]
        acc, f1 = _fit_score(parts[0][0], tr_y, parts[1][0], va_y, parts[2][0], te_y, _token_features())
        print(f"| WordPiece cjk=subwords ({len(sub)} tokens), 1-2-grams | all | none | 0% | {acc:.4f} | {f1:.4f} |")


if __name__ == "__main__":
    main()
