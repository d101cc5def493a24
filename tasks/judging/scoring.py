"""The numbers every judge computes the same way: classifier scores and the confusion figure, generator scores and
the retrieval baseline's answers.

The evaluate stages, the optimize stage's parity check and the gates all score through here, so "macro-F1" or
"chrF" means one computation on every screen and no stage imports another to get it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.kinds.generation.chats import prompt_text
from tasks.results.common import Messages
from tasks.results.scores import GenerationScores, Scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def score(y_true: list[int], y_pred: list[int], labels: list[str]) -> Scores:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support of label indices (-1 matches no class)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    idx = list(range(len(labels)))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return Scores(
        accuracy=accuracy_score(y_true, y_pred),
        macro_f1=f1_score(y_true, y_pred, labels=idx, average="macro", zero_division=0),
        per_class={
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(n[i])}
            for i, lab in enumerate(labels)
        },
    )


def confusion_figure(counts: list[list[int]], labels: list[str], title: str) -> Figure:
    """The confusion matrix as a figure titled `title` (register re-draws it with the model's name and version)."""
    import numpy as np
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    n = len(labels)
    # Capped at 18 inches, counts written in the cells up to 25 classes: 77 classes drew 95-inch figures with 5,929
    # texts (100 s and 4 GB per figure, measured).
    fig = Figure(figsize=(min(1.2 * n + 2.4, 18), min(1.2 * n + 1.6, 18)))
    ax = fig.subplots()
    shown = [label.replace("$", r"\$") for label in labels]  # a label is text, never matplotlib math ("$x^$")
    ConfusionMatrixDisplay(confusion_matrix=np.array(counts), display_labels=shown).plot(
        ax=ax,
        colorbar=False,
        cmap="Blues",
        include_values=n <= 25,
        xticks_rotation="vertical" if n > 8 else "horizontal",
    )
    if n > 25:
        ax.tick_params(labelsize=max(3, 9 - n // 20))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def score_answers(answers: list[str], references: list[str], perplexity: float | None = None) -> GenerationScores:
    """Exact match (whitespace-trimmed), corpus chrF (sacrebleu, 0-100) and mean ROUGE-L F1 (Google's rouge-score,
    Porter-stemmed, 0-100) of generated answers."""
    import sacrebleu
    from rouge_score import rouge_scorer

    exact = sum(a.strip() == r.strip() for a, r in zip(answers, references, strict=True)) / len(references)
    chrf = sacrebleu.corpus_chrf(answers, [references]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = sum(scorer.score(r, a)["rougeL"].fmeasure for a, r in zip(answers, references, strict=True))
    return GenerationScores(exact_match=exact, chrf=chrf, perplexity=perplexity, rouge_l=100 * rouge / len(references))


def retrieval_answers(train: list[Messages], prompts: list[Messages]) -> list[str]:
    """The answer of the most similar training prompt (TF-IDF word 1-2-grams, cosine) for each prompt."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train_matrix = vectorizer.fit_transform([prompt_text(m) for m in train])
    nearest = linear_kernel(vectorizer.transform([prompt_text(m) for m in prompts]), train_matrix).argmax(axis=1)
    return [train[i][-1]["content"] for i in nearest]
