"""Settings of the inference service, with defaults that serve the demo's champion on 127.0.0.1."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.registry_names import DEFAULT_MODEL_NAME
from core.workspace import DEFAULT_ROOT


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(DEFAULT_MODEL_NAME, description="Registered model to serve.")
    alias: str = Field("champion", description="Alias to follow; the service reloads when it moves.")
    workspace: str = Field(DEFAULT_ROOT, description="Workspace (MLflow registry and prediction log).")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: the workspace's SQLite.")
    host: str = Field("127.0.0.1", description="Interface to bind; 127.0.0.1 keeps the service local.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    token: str | None = Field(None, description="If set, requests need `Authorization: Bearer <token>`.")
    max_batch_size: int = Field(
        32, ge=1, description="Most texts (classifier) or sequences (generator) the model sees in one forward pass."
    )
    max_wait_ms: float = Field(
        0.0, ge=0, description="How long a batch waits to fill up; 0 takes whatever is waiting when the model is free."
    )
    max_texts: int = Field(256, ge=1, description="Most texts in one request (413 beyond).")
    max_text_chars: int = Field(5000, ge=1, description="Longest text accepted.")
    on_too_long: Literal["truncate", "reject"] = Field("truncate", description="Truncate long texts, or 413.")
    max_body_bytes: int = Field(4 * 2**20, ge=1, description="Largest request body accepted, in bytes (413 beyond).")
    max_tokens_ceiling: int = Field(
        512, ge=1, description="Generators: the largest max_tokens a request may ask for (422 beyond)."
    )
    default_max_tokens: int = Field(64, ge=1, description="Generators: max_tokens of a request that sets none.")
    generation_runtime: Literal["auto", "onnx", "pytorch"] = Field(
        "auto",
        description="Generators: what decodes. auto: the version's ONNX graph when one passed the parity gate "
        "(the optimize stage registers it), else PyTorch; onnx: fail to load a version without one.",
    )
    poll_seconds: float = Field(10.0, gt=0, description="How often to check whether the alias moved.")
    follow_events: bool = Field(
        True,
        description="Also reload on `zero2one.model.promoted` events, when a Prefect server (PREFECT_API_URL) is set.",
    )
    prediction_log: str | None = Field(None, description="Prediction log URI; default <workspace>/predictions.")
    journal: str | None = Field(
        None,
        description="Local SQLite file holding answered predictions until they move to the log; "
        "default <workspace>/serving/prediction-journal.sqlite (a local scratch folder for remote workspaces).",
    )
    webhook_secret: str | None = Field(
        None,
        description="Secret of the MLflow registry webhook that calls POST /webhooks/mlflow (alias events): "
        "deliveries signed with it make the service reload at once; unset, the route is off.",
    )
    webhook_max_age_seconds: float = Field(
        300.0, gt=0, description="Oldest webhook delivery accepted (its signed timestamp): older ones are replays."
    )
    log_flush_seconds: float = Field(
        30.0,
        gt=0,
        description="How often journaled predictions move into the log (and become visible to monitoring): "
        "one Parquet file per flush, so shorter means more files for the monitor to read.",
    )
