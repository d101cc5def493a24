"""`MonitorConfig`: how the drift statistics are computed (Evidently methods, thresholds, sample sizes)."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.retry import RetryPolicy
from tasks.monitoring.policy import DriftPolicy


class MonitorConfig(BaseModel):
    """How the drift statistics are computed (Evidently drift methods and their thresholds).

    The two ROC AUC thresholds are raised, on small samples, to what a random classifier reaches 5% of the time.
    """

    model_config = ConfigDict(extra="forbid")

    policy: DriftPolicy = DriftPolicy()
    sample_rows: int = Field(5000, ge=100, description="Rows per side for the input statistics.")
    model_rows: int = Field(
        500,
        ge=50,
        description="Rows per side that go through the model (predictions, embeddings, accuracy, tokenizer).",
    )
    text_threshold: float = Field(
        0.55, gt=0.5, lt=1, description="Least ROC AUC of the text domain classifier that counts as drift."
    )
    num_method: str | None = Field(
        None, description="Evidently method for numeric signals; default ks up to 1000 rows a side, else wasserstein."
    )
    num_threshold: float | None = Field(None, description="Its threshold; default: Evidently's for the method.")
    cat_method: str = Field(
        "jensenshannon",
        description="Evidently method for label signals. Not Evidently's chisquare: it takes the reference "
        "proportions as exact, which fired on 4 of 10 same-distribution windows here.",
    )
    cat_threshold: float | None = Field(None, description="Its threshold; default: Evidently's for the method.")
    embeddings_threshold: float = Field(
        0.55, gt=0.5, lt=1, description="Least ROC AUC of the embeddings domain classifier that counts as drift."
    )
    batch_size: int = Field(64, gt=0, description="Texts per forward pass of the champion.")
    seed: int = Field(0, description="Seed of the row samples.")
    textfile_dir: str | None = Field(
        None,
        description="Write the verdict as a Prometheus textfile here, for node_exporter's textfile collector "
        "(deployments/monitoring/); local folders only.",
    )
    retry: RetryPolicy = RetryPolicy(retries=1, delay_seconds=5)

    def numeric_method(self, n_ref: int, n_cur: int) -> str:
        """Evidently picks by reference size alone; a small current window is just as noisy, so both count."""
        return self.num_method or ("ks" if min(n_ref, n_cur) <= 1000 else "wasserstein")


def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most `n` rows, a seeded sample: the same rows for the same window, in every signal."""
    return df.sample(n=n, random_state=seed).reset_index(drop=True) if len(df) > n else df.reset_index(drop=True)
