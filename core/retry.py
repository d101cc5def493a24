"""A stage's retry policy: retries with jitter and a timeout.

Every stage config holds one; it stands on nothing, so a config module stays one floor above pydantic, and
`core/orchestration.py` turns it into a Prefect task's retries. Importing it loads no Prefect.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """Retries, delay with jitter, and a timeout for one stage."""

    model_config = ConfigDict(extra="forbid")

    retries: int = Field(2, ge=0, description="Attempts after the first failure.")
    delay_seconds: float = Field(5.0, ge=0, description="Wait before the first retry; doubles for each next one.")
    jitter_factor: float = Field(0.5, ge=0, description="Random spread of the delay (0.5 = up to +50%).")
    timeout_seconds: float | None = Field(None, gt=0, description="Fail the attempt after this long.")

    def delays(self) -> list[float]:
        return [self.delay_seconds * 2**i for i in range(max(self.retries, 1))]
