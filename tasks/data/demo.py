"""Synthetic, offline demo data: a small "product reviews" sentiment task.

Why synthetic: the demo and the tests must run offline, give byte-identical files for a seed, and
show a distribution shift we control. A seeded grammar does all three and is small enough to read.

The task: a review talks about 1-3 aspects of a product ("the battery of this phone is not great
but the screen is excellent"). Each opinion word has polarity +1 or -1, a negation ("not", "never",
"hardly") flips it, and the label is the sign of the sum (0 -> neutral; purely factual reviews are
neutral too). About 3% of labels are flipped on purpose. Because negation flips meaning, a bag of
words gets most of it but not all, which leaves room for a small transformer to earn its cost.

The shifted file is what "production" looks like later: products never seen in training (e-bike,
drone, ...), new opinion words and aspects, more negation, longer reviews with more filler, slang
and typos ("gr8", "meh", "soooo"), and more negative reviews. The labelling rule is unchanged, so a
model retrained on labelled shifted data can learn it.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

T = TypeVar("T")

LABELS = ("negative", "neutral", "positive")

NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "ten"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
COLORS = ["black", "white", "silver", "blue", "red", "grey", "green"]
PEOPLE = ["sister", "brother", "friend", "colleague", "neighbour", "dad", "mom"]
WHEN = ["last week", "last month", "yesterday", "two weeks ago", "in March", "before the holidays"]
USES = ["every day", "at work", "on weekends", "when I travel", "in the kitchen", "at home", "most evenings"]
FILLERS = [
    "I bought it {when}",
    "it arrived on {day}",
    "I use it {use}",
    "it came in a {color} box",
    "my {person} recommended it",
    "I got it as a gift",
    "I have had it for {num} weeks",
    "I have had it for {num} months",
    "I ordered it online",
    "it replaced my old one",
]
INTROS = [
    "I bought {this} {product} {when}",
    "{this} {product} came in a {color} box",
    "I ordered the {product} online",
    "my {person} recommended {this} {product}",
    "the {product} arrived on {day}",
    "I use {this} {product} {use}",
    "I got the {color} {product} as a gift",
]


@dataclass(frozen=True)
class Style:
    """Everything that differs between the base and the shifted distribution."""

    products: list[str]
    aspects: list[str]
    positive: list[str]
    negative: list[str]
    intensifiers: list[str]
    negations: list[str]  # each flips the polarity of the opinion word after it
    prior: dict[str, float]
    n_aspects: dict[int, float]  # 0 aspects = a purely factual review
    p_negation: float
    n_fillers: dict[int, float]
    max_words: int
    typos: dict[str, str]
    p_typo: float
    endings: list[str]


# Word tables read better as tables.
# fmt: off
BASE = Style(
    products=["phone", "laptop", "headphones", "blender", "backpack", "camera", "kettle", "tablet",
              "keyboard", "monitor", "speaker", "toaster", "printer", "mouse", "vacuum", "router"],
    aspects=["battery", "screen", "sound", "price", "build quality", "delivery", "support", "design",
             "weight", "packaging", "buttons", "charger", "manual", "warranty", "size", "cable"],
    positive=["great", "excellent", "sturdy", "reliable", "fast", "solid", "good", "impressive",
              "amazing", "smooth", "perfect", "nice"],
    negative=["awful", "flimsy", "slow", "broken", "disappointing", "terrible", "poor", "bad",
              "weak", "useless", "horrible", "noisy"],
    intensifiers=["very", "really", "quite", "pretty"],
    negations=["is not", "was not", "is never", "is hardly", "was hardly"],
    prior={"positive": 0.40, "negative": 0.35, "neutral": 0.25},
    n_aspects={0: 0.15, 1: 0.45, 2: 0.30, 3: 0.10},
    p_negation=0.2,
    n_fillers={0: 0.5, 1: 0.4, 2: 0.1},
    max_words=30,
    typos={},
    p_typo=0.0,
    endings=["."],
)

SHIFTED = Style(
    products=["e-bike", "drone", "smartwatch", "air fryer", "robot vacuum", "projector", "gaming chair",
              "scooter", "espresso machine", "dashcam", "fitness tracker", "label maker"],
    aspects=["battery", "screen", "sound", "price", "build quality", "delivery", "support", "design",
             "app", "motor", "range", "firmware", "strap", "noise level", "setup", "controls"],
    positive=["great", "excellent", "reliable", "fast", "solid", "good", "superb", "flawless", "snappy",
              "epic", "stellar", "legit"],
    negative=["awful", "flimsy", "slow", "broken", "disappointing", "terrible", "meh", "janky", "laggy",
              "trash", "buggy", "sluggish"],
    intensifiers=["very", "really", "soooo", "super", "totally", "kinda"],
    negations=["is not", "was not", "is never", "is hardly", "isn't", "wasn't", "is barely", "is not even"],
    prior={"positive": 0.30, "negative": 0.50, "neutral": 0.20},
    n_aspects={0: 0.08, 1: 0.20, 2: 0.37, 3: 0.25, 4: 0.10},
    p_negation=0.35,
    n_fillers={0: 0.2, 1: 0.5, 2: 0.3},
    max_words=45,
    typos={"great": "gr8", "really": "rly", "the": "teh", "very": "vry", "with": "w/", "my": "ma"},
    p_typo=0.15,
    endings=[".", "!!", "", " lol."],
)

GENERIC = [
    "the courier left the parcel {place}",
    "my order shipped on {day} and arrived on {day2}",
    "customer service answered my {channel} within {num} hours",
    "the shop offers free returns for {num} days",
    "I usually shop online on {day} evenings",
    "the tracking page said the package was {where}",
    "I paid with {payment} at checkout",
    "the support agent asked for my order number",
    "I compared prices in {num} shops before ordering",
    "the refund took {num} days to appear",
    "the store opens at {num} on {day}",
    "I called the help line on {day}",
    "the delivery window was between {num} and {num2}",
    "I picked up the order at the {pickup}",
    "the seller sent a tracking number by {channel}",
    "customer service transferred my {channel} to another team",
]
GENERIC_SLOTS = {
    "place": ["at the door", "with a neighbour", "in the mailbox", "at the front desk", "behind the gate",
              "in the garage", "on the porch"],
    "channel": ["email", "call", "message", "chat request", "letter"],
    "where": ["in transit", "at the warehouse", "at the sorting center", "out for delivery",
              "in the next town", "held at customs"],
    "payment": ["a card", "cash", "a gift card", "a voucher", "store credit", "my phone"],
    "pickup": ["post office", "corner shop", "parcel locker", "service desk", "train station"],
}
# fmt: on


class DemoDataPaths(BaseModel):
    reviews: Path
    reviews_shifted: Path
    corpus: Path


def _weighted(rng: random.Random, weights: dict[T, float]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _fill(rng: random.Random, template: str, product: str = "") -> str:
    """Fill the slots of a filler, intro or generic template; unused slots are ignored."""
    day, day2 = rng.sample(DAYS, 2)
    num, num2 = rng.sample(NUMBERS, 2)
    slots = {k: rng.choice(v) for k, v in GENERIC_SLOTS.items()}
    return template.format(
        product=product,
        this="these" if product.endswith("s") else "this",
        when=rng.choice(WHEN),
        day=day,
        day2=day2,
        use=rng.choice(USES),
        color=rng.choice(COLORS),
        person=rng.choice(PEOPLE),
        num=num,
        num2=num2,
        **slots,
    )


PLURAL = {
    "is": "are",
    "was": "were",
    "isn't": "aren't",
    "wasn't": "weren't",
    "feels": "feel",
    "seems": "seem",
}


def _clause(rng: random.Random, style: Style, subject: str, plural: bool) -> tuple[str, int]:
    """One opinion about one aspect, e.g. "the screen is not very good"; returns (text, polarity)."""
    polarity = rng.choice([1, -1])
    word = rng.choice(style.positive if polarity > 0 else style.negative)
    if rng.random() < 0.3:
        word = f"{rng.choice(style.intensifiers)} {word}"
    negated = rng.random() < style.p_negation
    if negated:
        polarity = -polarity
    if rng.random() < 0.2:
        return f"{'I never found' if negated else 'I found'} {subject} {word}", polarity
    verb, *rest = (rng.choice(style.negations) if negated else rng.choice(["is", "was", "feels", "seems"])).split()
    if plural:
        verb = PLURAL[verb]
    return " ".join([subject, verb, *rest, word]), polarity


def _review(rng: random.Random, style: Style) -> tuple[str, int]:
    """A review and the sum of its polarities (0 for a purely factual one)."""
    product = rng.choice(style.products)
    n = _weighted(rng, style.n_aspects)
    parts, total, prev = [], 0, 0
    if n == 0:
        parts.append(_fill(rng, rng.choice(INTROS), product))
    for i, aspect in enumerate(rng.sample(style.aspects, n)):
        det = rng.choice(["these" if product.endswith("s") else "this", "the", "my", "my new"])
        subject = f"the {aspect} of {det} {product}" if i == 0 else f"the {aspect}"
        text, polarity = _clause(rng, style, subject, plural=aspect.endswith("s"))
        if i > 0:  # "but" mostly where the opinion turns, as people write
            contrast = polarity != prev and rng.random() < 0.7
            text = f"{rng.choice(['but', 'although']) if contrast else 'and'} {text}"
        parts.append(text)
        total, prev = total + polarity, polarity
    body = " ".join(parts)
    fillers = [_fill(rng, rng.choice(FILLERS)) for _ in range(_weighted(rng, style.n_fillers))]
    sentences = [body, *fillers] if n == 0 or rng.random() < 0.5 else [*fillers, body]
    text = ". ".join(s[0].upper() + s[1:] for s in sentences) + rng.choice(style.endings)
    if style.p_typo:
        text = " ".join(
            style.typos[w] if w in style.typos and rng.random() < style.p_typo else w for w in text.split(" ")
        )
    return text, total


def _label(total: int) -> str:
    return "positive" if total > 0 else "negative" if total < 0 else "neutral"


def _labeled(rng: random.Random, style: Style, n: int, seen: set[str]) -> list[tuple[str, str]]:
    """`n` unique reviews; the label prior is hit by drawing a target label and resampling until it fits."""
    rows: list[tuple[str, str]] = []
    target = None
    for _ in range(200 * n + 1000):
        if len(rows) == n:
            return rows
        target = target or _weighted(rng, style.prior)
        text, total = _review(rng, style)
        if _label(total) != target or text in seen or not 5 <= len(text.split()) <= style.max_words:
            continue
        seen.add(text)
        label = target
        if rng.random() < 0.03:  # deliberate label noise: real labels are never perfect
            label = rng.choice([x for x in LABELS if x != target])
        rows.append((text, label))
        target = None
    raise RuntimeError(f"the grammar ran out of unique reviews after {len(rows)} of {n}")


def _generic(rng: random.Random) -> str:
    """A neutral sentence about shopping, delivery or customer service."""
    first, second = rng.sample(GENERIC, 2)
    text = _fill(rng, first)
    if rng.random() < 0.5:
        text += f" and {_fill(rng, second)}"
    return text[0].upper() + text[1:] + "."


def _corpus(rng: random.Random, n: int, seen: set[str]) -> list[str]:
    lines: list[str] = []
    for _ in range(200 * n + 1000):
        if len(lines) == n:
            return lines
        text = _generic(rng) if rng.random() < 0.2 else _review(rng, BASE)[0]
        if text not in seen and 5 <= len(text.split()) <= BASE.max_words:
            seen.add(text)
            lines.append(text)
    raise RuntimeError(f"the grammar ran out of unique corpus lines after {len(lines)} of {n}")


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["review", "sentiment"])
        writer.writerows(rows)


def write_demo_data(
    out_dir: str | Path, n_labeled: int = 2400, n_corpus: int = 6000, n_shifted: int = 1200, seed: int = 0
) -> DemoDataPaths:
    """Write reviews.csv, reviews_shifted.csv and corpus.txt to `out_dir`; same seed, same bytes.

    Each file has its own random stream, so changing one count does not reshuffle the other files
    (except through deduplication: no text appears twice, within or across files).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = DemoDataPaths(
        reviews=out / "reviews.csv", reviews_shifted=out / "reviews_shifted.csv", corpus=out / "corpus.txt"
    )
    seen: set[str] = set()
    _write_csv(paths.reviews, _labeled(random.Random(f"{seed}:reviews"), BASE, n_labeled, seen))
    _write_csv(paths.reviews_shifted, _labeled(random.Random(f"{seed}:shifted"), SHIFTED, n_shifted, seen))
    lines = _corpus(random.Random(f"{seed}:corpus"), n_corpus, seen)
    paths.corpus.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths
