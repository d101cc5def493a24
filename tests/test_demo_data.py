"""The demo data must be deterministic, unique, shifted where promised, and learnable but not trivially."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from tasks.data.demo import BASE, LABELS, SHIFTED, DemoDataPaths, write_demo_data

Data = tuple[DemoDataPaths, pd.DataFrame, pd.DataFrame, list[str]]
NEGATION = re.compile(r"\b(?:not|never|hardly)\b")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    paths = write_demo_data(tmp_path_factory.mktemp("demo"))
    corpus = paths.corpus.read_text(encoding="utf-8").splitlines()
    return paths, pd.read_csv(paths.reviews), pd.read_csv(paths.reviews_shifted), corpus


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    sizes = dict(n_labeled=300, n_corpus=300, n_shifted=200)
    a = write_demo_data(tmp_path / "a", seed=7, **sizes)
    b = write_demo_data(tmp_path / "b", seed=7, **sizes)
    c = write_demo_data(tmp_path / "c", seed=8, **sizes)
    for field in DemoDataPaths.model_fields:
        pa, pb, pc = (getattr(p, field) for p in (a, b, c))
        assert pa.read_bytes() == pb.read_bytes(), field
        assert pa.read_bytes() != pc.read_bytes(), field


def test_schema_and_sizes(data: Data) -> None:
    paths, reviews, shifted, corpus = data
    assert paths.reviews.name == "reviews.csv" and paths.corpus.name == "corpus.txt"
    for df, n in ((reviews, 2400), (shifted, 1200)):
        assert list(df.columns) == ["review", "sentiment"]
        assert set(df.sentiment) == set(LABELS)
        assert len(df) == n
        assert df.review.str.strip().str.len().gt(0).all()
    assert len(corpus) == 6000 and all(line.strip() for line in corpus)
    assert reviews.review.map(lambda t: 5 <= len(t.split()) <= 30).all()


def test_texts_unique_within_and_across_files(data: Data) -> None:
    _, reviews, shifted, corpus = data
    texts = [*reviews.review, *shifted.review, *corpus]
    assert len(set(texts)) == len(texts)


def test_label_prior(data: Data) -> None:
    _, reviews, shifted, _ = data
    prior = reviews.sentiment.value_counts(normalize=True)
    assert abs(prior["positive"] - 0.40) < 0.05
    assert abs(prior["negative"] - 0.35) < 0.05
    assert abs(prior["neutral"] - 0.25) < 0.05
    shifted_prior = shifted.sentiment.value_counts(normalize=True)
    assert shifted_prior["negative"] > prior["negative"] + 0.08


def test_shift_is_measurable(data: Data) -> None:
    _, reviews, shifted, corpus = data
    seen = {w for t in reviews.review for w in words(t)}
    assert shifted.review.map(lambda t: any(w not in seen for w in words(t))).mean() > 0.5
    base_text, corpus_text = " ".join(reviews.review).lower(), " ".join(corpus).lower()
    for product in SHIFTED.products:
        assert product not in base_text and product not in corpus_text, product
    assert set(SHIFTED.products).isdisjoint(BASE.products)
    assert shifted.review.str.split().str.len().mean() > reviews.review.str.split().str.len().mean() + 3
    negated = shifted.review.str.contains(NEGATION).mean()
    assert negated > reviews.review.str.contains(NEGATION).mean()


def test_bag_of_words_learns_it_but_negation_keeps_it_imperfect(data: Data) -> None:
    _, reviews, _, _ = data
    train, test = train_test_split(reviews, test_size=0.2, random_state=0, stratify=reviews.sentiment)
    vectorizer = TfidfVectorizer()
    model = LogisticRegression(max_iter=1000).fit(vectorizer.fit_transform(train.review), train.sentiment)
    predicted = model.predict(vectorizer.transform(test.review))
    f1 = f1_score(test.sentiment, predicted, average="macro")
    majority = DummyClassifier().fit(train.review, train.sentiment).predict(test.review)
    assert f1_score(test.sentiment, majority, average="macro") < 0.3
    assert 0.6 < f1 < 0.99
    # the errors concentrate where negation flips a word's meaning
    correct = pd.Series(predicted == test.sentiment.to_numpy(), index=test.index)
    negated = test.review.str.contains(NEGATION)
    assert correct[negated].mean() < correct[~negated].mean() - 0.1
