"""One way to cut rows into train/validation/test: two seeded `train_test_split` steps, stratified by label.

Shared by the data stage and the retraining data (`tasks/monitoring/retrain_data.py`), so a row lands in the
same split for the same seed wherever it is cut. The shares are of all rows: test first, then validation out
of the rest at `validation / (1 - test)`.
"""

from __future__ import annotations

import pandas as pd


def three_way_split(
    df: pd.DataFrame, validation: float, test: float, seed: int, stratify: str | None = "label"
) -> dict[str, pd.DataFrame]:
    """`{"train", "validation", "test"}` frames of `df`; `stratify` names the label column (None: plain shuffle).

    sklearn raises ValueError where a stratified split is impossible (a label with too few rows): callers
    decide whether that is the user's error or a reason to split without stratification.
    """
    from sklearn.model_selection import train_test_split  # 3 s to import here under load; only a split needs it

    rest, test_rows = train_test_split(
        df, test_size=test, random_state=seed, stratify=df[stratify] if stratify else None
    )
    train, val = train_test_split(
        rest, test_size=validation / (1 - test), random_state=seed, stratify=rest[stratify] if stratify else None
    )
    return {"train": train, "validation": val, "test": test_rows}
