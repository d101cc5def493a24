"""`zero2one serve`: the inference service for the registered champion."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.environment import configure_environment


def serve(
    model: Annotated[str, typer.Option(help="Registered model name.")] = "zero2one-classifier",
    alias: Annotated[str, typer.Option(help="Alias to serve and follow (reloads when it moves).")] = "champion",
    workspace: Annotated[
        str, typer.Option(help="Workspace with the MLflow registry and prediction log.")
    ] = ".zero2one",
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="ZERO2ONE_SERVE_TOKEN", help="Require this bearer token.")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Most texts in one forward pass.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits to fill up; 0 takes what is waiting when the model is free.")
    ] = 0.0,
    poll_seconds: Annotated[float, typer.Option(help="How often to check whether the alias moved.")] = 10.0,
    no_follow_events: Annotated[
        bool, typer.Option("--no-follow-events", help="Poll only; do not also reload on promotion events.")
    ] = False,
    prediction_log: Annotated[
        str | None, typer.Option(help="Prediction log URI (default: WORKSPACE/predictions).")
    ] = None,
    log_flush_seconds: Annotated[
        float,
        typer.Option(help="How often answered predictions move from the journal into the log (one file per flush)."),
    ] = 30.0,
    journal: Annotated[str | None, typer.Option(help="Local SQLite journal (default: in WORKSPACE/serving).")] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (costs CPU; /metrics counts them anyway).")
    ] = False,
) -> None:
    """Serve models:/MODEL@ALIAS over HTTP: POST /predict, GET /health /ready /metrics.

    Concurrent requests are micro-batched. Every prediction is committed to a local journal before its
    response, then moved into the prediction log that `zero2one monitor` reads. When the alias moves (polled,
    and on zero2one.model.promoted events where PREFECT_API_URL is set), the new version loads in the background.
    """
    configure_environment(workspace)
    import uvicorn

    from serving.app import create_app
    from serving.config import ServeConfig

    cfg = ServeConfig(
        model_name=model,
        alias=alias,
        workspace=workspace,
        host=host,
        port=port,
        token=token,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        poll_seconds=poll_seconds,
        follow_events=not no_follow_events,
        prediction_log=prediction_log,
        log_flush_seconds=log_flush_seconds,
        journal=journal,
    )
    typer.echo(f"serving models:/{model}@{alias} on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info", access_log=access_log)
