"""Pieces of the model card every kind's sections use (`tasks/registry/model_card.py` puts the card together)."""

from __future__ import annotations

from core.registry_names import SERVED_PYTORCH_SAME_ROWS, SERVED_ROWS
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


def where_served(runtime: str, numbers: str, tags: dict[str, str] | None = None) -> str:
    """The card's "what serves" sentence: the served runtime's score beside PyTorch's (every other number).

    A graph is scored by the optimize stage's parity run, which may read fewer test rows than the evaluation did;
    PyTorch's score on those same rows (`SERVED_PYTORCH_SAME_ROWS`) is then the number to compare it with."""
    if runtime == "pytorch":
        return f"\n\nWhat serves: served ({runtime}) {numbers}, on the same test rows."
    tags = tags or {}
    rows = f" ({tags[SERVED_ROWS]} test rows)" if SERVED_ROWS in tags else " on the test split"
    same = tags.get(SERVED_PYTORCH_SAME_ROWS)
    like = f"; PyTorch scores {same} on those same rows" if same else ""
    return f"\n\nWhat serves: served ({runtime}) {numbers}, on the optimize stage's parity run{rows}{like}."
