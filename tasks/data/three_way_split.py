"""One way to cut rows into train/validation/test: seeded `train_test_split` steps, stratified by label.

Shared by the classification data stage (`tasks/data/split.py`, also when it carves only the splits a source
lacks), the instruction data stage (unstratified) and the retraining data (`tasks/monitoring/retrain_data.py`), so
a row lands in the same split for the same seed wherever it is cut. The shares are of all rows, as a single file
gets them: test first, then validation out of the rest at `validation / (1 - test)`. Carving test alone out of
a train file that comes with its own validation takes `test / (1 - validation)`.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd


def three_way_split(
    df: pd.DataFrame,
    validation: float,
    test: float,
    seed: int,
    stratify: str | None = "label",
    missing: Collection[str] = ("validation", "test"),
) -> dict[str, pd.DataFrame]:
    """`train` plus the `missing` splits cut out of `df`; `stratify` names the label column (None: plain shuffle).

    sklearn raises ValueError where a stratified split is impossible (a label with too few rows): callers
    decide whether that is the user's error or a reason to split without stratification.
    """
    from sklearn.model_selection import train_test_split  # 3 s to import here under load; only a split needs it

    frames, rest = {}, df
    if "test" in missing:
        share = test if "validation" in missing else test / (1 - validation)
        rest, frames["test"] = train_test_split(
            rest, test_size=share, random_state=seed, stratify=rest[stratify] if stratify else None
        )
    if "validation" in missing:
        rest, frames["validation"] = train_test_split(
            rest, test_size=validation / (1 - test), random_state=seed, stratify=rest[stratify] if stratify else None
        )
    return {"train": rest} | {s: frames[s] for s in ("validation", "test") if s in frames}
