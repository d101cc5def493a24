"""`zero2one serve`: the inference service for the registered champion.

Its options are `ServeConfig`'s fields (`serving/config.py`), generated: a field added there is an option here,
with the same default, help and validation. A config file may hold the same settings in a `serve:` section.
"""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from pydantic import model_validator

from cli.model_options import Given, OptionGroup, with_options
from cli.settings import ConfigOpt, SetOpt, TrackingUriOpt, WorkspaceOpt, resolve
from serving.config import ServeConfig

SERVE_OPTIONS = OptionGroup(
    ServeConfig,
    "serve",
    rename={"model_name": "--model"},
    skip=("workspace", "tracking_uri"),  # the common --workspace and --tracking-uri say where things are
    extra={"token": {"envvar": "ZERO2ONE_SERVE_TOKEN"}, "webhook_secret": {"envvar": "ZERO2ONE_WEBHOOK_SECRET"}},
)


@functools.cache
def serve_settings() -> type:
    """`PipelineConfig` plus a `serve:` section; built on first use, so `--help` imports no pipeline stage."""
    from flows.config import PipelineConfig

    class ServeSettings(PipelineConfig):
        """Where things are comes from `workspace` and `tracking` only; the model defaults to the registry's."""

        serve: ServeConfig = ServeConfig()

        @model_validator(mode="after")
        def _one_place(self) -> ServeSettings:
            if {"workspace", "tracking_uri"} & self.serve.model_fields_set:
                raise ValueError("serve.workspace and serve.tracking_uri: use workspace.root and tracking.uri")
            update = {"workspace": self.workspace.root, "tracking_uri": self.tracking.uri}
            if "model_name" not in self.serve.model_fields_set:  # the model the config's pipeline registers
                update["model_name"] = self.registry.model_name
            self.serve = self.serve.model_copy(update=update)
            return self

    return ServeSettings


@with_options(SERVE_OPTIONS)
def serve(
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (costs CPU; /metrics counts them anyway).")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
    given: list[Given] = (),
) -> None:
    """Serve models:/MODEL@ALIAS over HTTP: POST /predict for a classifier, OpenAI-compatible
    POST /v1/completions and /v1/chat/completions for a generator; GET /health /ready /metrics.

    Concurrent requests are batched. Every answer is committed to a local journal before its
    response, then moved into the prediction log that `zero2one monitor` reads. When the alias moves (polled,
    and on zero2one.model.promoted events where PREFECT_API_URL is set), the new version loads in the background.
    """
    cfg = resolve(config, set_, workspace, tracking_uri, given=given, model=serve_settings()).serve
    import uvicorn

    from serving.app import create_app

    url = f"http://{cfg.host}:{cfg.port}"
    typer.echo(f"serving models:/{cfg.model_name}@{cfg.alias} on {url}  (docs: {url}/docs)")
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info", access_log=access_log)
