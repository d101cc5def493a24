"""Where things are, said one way: the options every command takes and the one function that resolves them.

`--config FILE`, `--set KEY=VALUE`, and the shortcuts `--workspace ROOT` (= `--set workspace.root=ROOT`) and
`--tracking-uri URI` (= `--set tracking.uri=URI`) become one typed `PipelineConfig` (or a command's extension of
it with its own section, e.g. `serve:`) through `resolve`. Options generated from a command's config
(`cli/model_options.py`) land in that section and are validated with the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import fail
from cli.environment import configure_environment
from cli.model_options import Given
from core.workspace import DEFAULT_ROOT
from flows.raw_config import ConfigFileError, apply_overrides, load_raw

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flows.config import PipelineConfig

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="FILE", help="YAML preset, e.g. configs/tiny.yaml.", exists=True, dir_okay=False
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override one setting, e.g. --set finetune.epochs=2 (repeatable)."
    ),
]
WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        metavar="ROOT",
        help=f"Workspace folder or URL: data, models, MLflow, prediction log. Same as --set workspace.root=ROOT "
        f"[default: {DEFAULT_ROOT}]",
    ),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        metavar="URI",
        help="MLflow tracking URI. Same as --set tracking.uri=URI [default: $ZERO2ONE_TRACKING_URI, else SQLite "
        "in the workspace]",
    ),
]
COMMON_OPTIONS = ("--config", "--set", "--workspace", "--tracking-uri")
COMMAND_SECTIONS = ("serve", "monitor", "window")  # config file sections only some commands read


def shortcuts(workspace: str | None, tracking_uri: str | None) -> list[str]:
    """The `--set` items `--workspace` and `--tracking-uri` stand for (they come after the user's own)."""
    return [f"{key}={value}" for key, value in (("workspace.root", workspace), ("tracking.uri", tracking_uri)) if value]


def resolve(
    config: Path | None,
    sets: list[str] | None,
    workspace: str | None = None,
    tracking_uri: str | None = None,
    *,
    given: list[Given] = (),
    model: type[PipelineConfig] | None = None,
    preflight: bool = False,
) -> PipelineConfig:
    """Defaults < the file < `--set` < the shortcuts < generated options; set up the environment; validate.

    The environment (Prefect's home in the workspace) is set before anything imports Prefect. With `preflight`,
    the data source is checked first: a typo fails in a second or two, before training libraries load.
    """
    overrides = [*(sets or []), *shortcuts(workspace, tracking_uri)]
    try:
        raw = load_raw(config)
        from_file = set(raw)
        apply_overrides(raw, overrides)
    except ConfigFileError as e:
        fail(str(e))
    for item in given:
        _put(raw, item.key, item.value)
    configure_environment(workspace_root(raw))
    if preflight:
        _preflight_data(raw)
    from core.errors import PipelineInputError
    from flows.config import PipelineConfig, validate

    overridden = {item.partition("=")[0].split(".")[0].strip() for item in overrides}
    for section in (from_file - overridden) & (set(COMMAND_SECTIONS) - set((model or PipelineConfig).model_fields)):
        del raw[section]  # one file can serve every command: another command's section in it is no typo
    source = str(config) if config else "config"
    options = {item.key: f"{item.option} {item.value}" for item in given}
    try:
        return validate(raw, source=source, overrides=overrides, model=model, options=options)
    except PipelineInputError as e:
        fail(str(e))


def workspace_root(raw: dict) -> str:
    """The workspace a raw (not yet validated) config names."""
    ws = raw.get("workspace") or {}
    return str(ws.get("root", DEFAULT_ROOT)) if isinstance(ws, dict) else DEFAULT_ROOT


def _put(raw: dict, key: str, value) -> None:
    *sections, name = key.split(".")
    node = raw
    for section in sections:
        if not isinstance(node.get(section), dict):
            node[section] = {}
        node = node[section]
    node[name] = value


def _preflight_data(raw: dict) -> None:
    from pydantic import ValidationError

    from core.errors import PipelineInputError
    from tasks.data import prepare as data

    try:
        cfg = data.DataConfig.model_validate(raw.get("data") or {})
    except ValidationError:
        return  # the full validation that follows names the key
    try:
        data.preflight_data(cfg, workspace_root(raw))
    except PipelineInputError as e:
        fail(str(e))


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="NAME", help="Registered model [default: the config's registry.model_name]"),
]


def extended(name: str, **sections: type[BaseModel]) -> type[PipelineConfig]:
    """`PipelineConfig` plus a command's own sections (each with its defaults): one typed tree to validate."""
    from pydantic import create_model

    from flows.config import PipelineConfig

    return create_model(name, __base__=PipelineConfig, **{key: (model, model()) for key, model in sections.items()})


def pipeline_part(cfg: PipelineConfig) -> PipelineConfig:
    """Only the pipeline's sections of an extended config: what flows take as `pipeline_config`."""
    from flows.config import PipelineConfig

    return PipelineConfig.model_validate({key: getattr(cfg, key) for key in PipelineConfig.model_fields})
