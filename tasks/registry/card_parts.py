"""Pieces of the model card every kind's sections use (`tasks/registry/model_card.py` puts the card together)."""

from __future__ import annotations

from tasks.results.data import ArrowSplits

CARD_SAMPLES = 5  # sample answers on a generator's card (all of them are in the evaluation run)


def data_lines(data: ArrowSplits, what: str) -> list[str]:
    """The card's data section: where the data came from, its fingerprint, what was dropped."""
    return [
        "## Data",
        "",
        f"- source: `{data.source}`{what}",
        f"- fingerprint: `{data.fingerprint}` at `{data.uri}`",
        f"- dropped: {data.dropped or 'nothing'}",
        "",
    ]


def where_served(runtime: str, numbers: str) -> str:
    """The card's "what serves" sentence: the served runtime's score beside PyTorch's (every other number)."""
    where = "the same test rows" if runtime == "pytorch" else "the optimize stage's parity run on the test split"
    return f"\n\nWhat serves: served ({runtime}) {numbers}, on {where}."
