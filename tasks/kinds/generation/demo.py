"""Synthetic, offline instruction data for the generation track: "state the verdict and the aspects of this review".

Built from the review grammar of `tasks/data/demo.py` (its word tables: products, aspects, opinion words,
negations), so a user who knows the classification demo knows this one. Each example is a prompt (an
instruction plus a review) and the one correct response:

    prompt:   State the verdict and the aspects of this review.
              Review: The battery of this phone is not great but the screen is excellent.
    response: Verdict: neutral. Aspects: battery (negative), screen (positive).

A fifth of the prompts ask a second, easier question ("Which product is this review about?" ->
"The phone."), so the model has to read the instruction, not only the review. The response is a
function of the prompt (no label noise), so exact match and chrF measure the skill directly.

What it shows: a tiny decoder (~1M parameters), pretrained on the review corpus and instruction-tuned
on 2 CPU cores (configs/tiny-generation.yaml, ~7 minutes end to end on the shared, loaded machine), learns
the answer format, mostly copies the aspects in order and judges them through negation ("is not great" ->
negative). Measured on 200 test prompts: exact match 0.48 and chrF 87.4, against the retrieval baseline
(the answer of the most similar training prompt, which cannot copy: 0.135 / 62.1) and the model before
instruction tuning (0.0 / 2.1). It still makes copy and polarity mistakes on half the prompts.

The shifted file keeps the same instructions and rules but
uses the SHIFTED style (new products, aspects, slang, more negation, more aspects), for drift work.

What it does not show: open-ended generation, reasoning, facts about the world, or anything a
larger model would be needed for; scores here say nothing about general language ability.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import BaseModel

from tasks.data.demo import BASE, COLORS, DAYS, PEOPLE, PLURAL, SHIFTED, USES, WHEN, Style

VERDICT_INSTRUCTIONS = [
    "State the verdict and the aspects of this review.",
    "Give the verdict of this review and the aspects it mentions.",
    "What is the verdict of this review, and which aspects does it judge?",
]
PRODUCT_INSTRUCTIONS = ["Which product is this review about?", "Name the product this review is about."]
FILLERS = [
    "I bought it {when}",
    "I use it {use}",
    "it arrived on {day}",
    "it came in a {color} box",
    "my {person} recommended it",
]
ASPECT_COUNTS = {3: [1, 1, 2, 2, 2, 3], 4: [1, 2, 2, 3, 3, 4]}  # how many aspects a review judges, as draws
SPLIT_SIZES = {"train": 3000, "validation": 200, "test": 200}


class DemoInstructionPaths(BaseModel):
    """Where `write_demo_instructions` put its files."""

    instructions: Path  # folder with train.jsonl, validation.jsonl, test.jsonl (prompt/response)
    instructions_shifted: Path  # one jsonl file, same instructions in the shifted style
    corpus: Path  # txt, one review per line, for causal pretraining


def _clause(rng: random.Random, style: Style, subject: str, plural: bool) -> tuple[str, int]:
    """One opinion about one aspect; a negation flips the polarity of its opinion word."""
    polarity = rng.choice([1, -1])
    word = rng.choice(style.positive if polarity > 0 else style.negative)
    if rng.random() < 0.25:
        word = f"{rng.choice(style.intensifiers)} {word}"
    negated = rng.random() < style.p_negation
    verb, *rest = (rng.choice(style.negations) if negated else rng.choice(["is", "was", "feels", "seems"])).split()
    verb = PLURAL.get(verb, verb) if plural else verb
    return " ".join([subject, verb, *rest, word]), -polarity if negated else polarity


def review(rng: random.Random, style: Style, max_aspects: int = 3) -> tuple[str, str, list[tuple[str, int]]]:
    """A review, its product and its (aspect, polarity) pairs in the order they are mentioned."""
    product = rng.choice(style.products)
    n = rng.choice(ASPECT_COUNTS[max_aspects])
    parts, aspects = [], []
    for i, aspect in enumerate(rng.sample(style.aspects, n)):
        det = rng.choice(["these" if product.endswith("s") else "this", "the", "my"])
        subject = f"the {aspect} of {det} {product}" if i == 0 else f"the {aspect}"
        text, polarity = _clause(rng, style, subject, plural=aspect.endswith("s"))
        if i > 0:
            text = f"{'but' if polarity != aspects[-1][1] else 'and'} {text}"
        parts.append(text)
        aspects.append((aspect, polarity))
    sentences = [" ".join(parts)]
    if rng.random() < 0.3:
        filler = rng.choice(FILLERS).format(
            when=rng.choice(WHEN),
            use=rng.choice(USES),
            day=rng.choice(DAYS),
            color=rng.choice(COLORS),
            person=rng.choice(PEOPLE),
        )
        sentences.insert(rng.randrange(2), filler)
    text = ". ".join(s[0].upper() + s[1:] for s in sentences) + rng.choice(style.endings)
    if style.p_typo:
        text = " ".join(style.typos.get(w, w) if rng.random() < style.p_typo else w for w in text.split(" "))
    return text, product, aspects


def verdict_response(aspects: list[tuple[str, int]]) -> str:
    total = sum(p for _, p in aspects)
    verdict = "positive" if total > 0 else "negative" if total < 0 else "neutral"
    listed = ", ".join(f"{a} ({'positive' if p > 0 else 'negative'})" for a, p in aspects)
    return f"Verdict: {verdict}. Aspects: {listed}."


def example(rng: random.Random, style: Style) -> dict[str, str]:
    """One prompt/response pair: mostly the verdict task, a fifth of the time the product question."""
    text, product, aspects = review(rng, style, max_aspects=4 if style is SHIFTED else 3)
    if rng.random() < 0.2:
        return {"prompt": f"{rng.choice(PRODUCT_INSTRUCTIONS)}\nReview: {text}", "response": f"The {product}."}
    return {"prompt": f"{rng.choice(VERDICT_INSTRUCTIONS)}\nReview: {text}", "response": verdict_response(aspects)}


def _unique(rng: random.Random, style: Style, n: int, seen: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for _ in range(50 * n + 1000):
        if len(rows) == n:
            return rows
        row = example(rng, style)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    raise RuntimeError(f"the grammar ran out of unique prompts after {len(rows)} of {n}")


def _corpus(rng: random.Random, n: int, seen: set[str]) -> list[str]:
    lines: list[str] = []
    for _ in range(50 * n + 1000):
        if len(lines) == n:
            return lines
        text = review(rng, BASE)[0]
        if text not in seen:
            seen.add(text)
            lines.append(text)
    raise RuntimeError(f"the grammar ran out of unique corpus lines after {len(lines)} of {n}")


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_demo_instructions(
    out_dir: str | Path,
    sizes: dict[str, int] | None = None,
    n_corpus: int = 8000,
    n_shifted: int = 300,
    seed: int = 0,
) -> DemoInstructionPaths:
    """Write the instruction splits, the shifted file and the pretraining corpus; same seed, same bytes.

    No review appears twice across all files (the corpus never holds an evaluation review), so held-out
    scores are held out.
    """
    out = Path(out_dir)
    folder = out / "instructions"
    folder.mkdir(parents=True, exist_ok=True)
    paths = DemoInstructionPaths(
        instructions=folder,
        instructions_shifted=out / "instructions_shifted.jsonl",
        corpus=out / "instructions_corpus.txt",
    )
    seen: set[str] = set()
    for split, n in (sizes or SPLIT_SIZES).items():
        _write_jsonl(folder / f"{split}.jsonl", _unique(random.Random(f"{seed}:{split}"), BASE, n, seen))
    _write_jsonl(paths.instructions_shifted, _unique(random.Random(f"{seed}:shifted"), SHIFTED, n_shifted, seen))
    reviews = {p.split("\nReview: ", 1)[1] for p in seen}
    lines = _corpus(random.Random(f"{seed}:corpus"), n_corpus, reviews)
    paths.corpus.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths
