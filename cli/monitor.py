"""`zero2one monitor` and `zero2one retrain`: the command-line side of closing the loop.

Their options are generated from the configs the flows take: the window from `WindowSource`
(`tasks/monitoring/windows.py`), the drift check from `MonitorConfig` and its `DriftPolicy`
(`tasks/monitoring/config.py`). A config file may hold the same settings in `window:` and `monitor:` sections;
`monitor.retry` and other nested settings are set with `--set monitor.retry.retries=2`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import typer

from cli.common import fail
from cli.environment import start_embedded_prefect
from cli.model_options import Given, OptionGroup, with_options
from cli.settings import (
    ConfigOpt,
    ModelOpt,
    SetOpt,
    TrackingUriOpt,
    WorkspaceOpt,
    extended,
    pipeline_part,
    resolve,
)
from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.windows import WindowSource

AliasOpt = Annotated[str, typer.Option(metavar="ALIAS", help="Alias of the version to monitor / retrain.")]
WINDOW = {"uri": "--window", "last_n": "--last"}
MONITOR_OPTIONS = OptionGroup(MonitorConfig, "monitor", flatten=("policy",))


@functools.cache
def monitor_settings() -> type:
    """`PipelineConfig` plus the `monitor:` and `window:` sections, built on first use (after the environment)."""
    return extended("MonitorSettings", monitor=MonitorConfig, window=WindowSource)


@with_options(OptionGroup(WindowSource, "window", rename=WINDOW), MONITOR_OPTIONS)
def monitor(
    model: ModelOpt = None,
    alias: AliasOpt = "champion",
    retrain_on_drift: Annotated[
        bool,
        typer.Option("--retrain-on-drift", help="On drift, retrain on the window's labeled rows now."),
    ] = False,
    retrain_settings: Annotated[
        Literal["champion", "given"],
        typer.Option(
            "--retrain-settings",
            help="The retrain's training settings: champion = those the champion was trained with; "
            "given = --config/--set as they are (see zero2one retrain --settings).",
        ),
    ] = "champion",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
    given: list[Given] = (),
) -> None:
    """Check a window of production inputs for drift against what the champion was trained on.

    Prints the verdict and the signals; on drift emits the Prefect event zero2one.drift.detected.
    """
    settings = resolve(config, set_, workspace, tracking_uri, given=given, model=monitor_settings())
    from core.errors import PipelineInputError
    from flows.monitor import monitor as monitor_flow

    start_embedded_prefect()
    try:
        result = monitor_flow(
            model_name=model or settings.registry.model_name,
            alias=alias,
            window=settings.window,
            config=settings.monitor,
            retrain_on_drift=retrain_on_drift,
            pipeline_config=pipeline_part(settings),
            retrain_settings=retrain_settings,
        )
    except PipelineInputError as e:
        fail(str(e))
    _print_verdict(result, model, alias)


def _print_verdict(result, model: str | None, alias: str) -> None:
    report = result.report
    color = {"drift": typer.colors.RED, "no_drift": typer.colors.GREEN}.get(report.status, typer.colors.YELLOW)
    typer.secho(f"{report.model_name or model} v{report.model_version or '?'}: {report.status}", fg=color, bold=True)
    for reason in report.reasons + [f"not computed: {s}" for s in report.skipped]:
        typer.echo(f"  {reason}")
    for s in report.signals:
        typer.echo(
            f"  {'*' if s.fired else ' '} {s.name:16s} {s.score:10.4f}  threshold {s.threshold:.4f}  ({s.method})"
        )
    if report.report_uri:
        typer.echo(f"Reports: {report.report_uri}")
    if result.event_id:
        typer.echo(f"Emitted zero2one.drift.detected ({result.event_id})")
    if result.retrain_skipped:
        typer.secho(result.retrain_skipped, fg=typer.colors.YELLOW)
    if result.retrain:
        r = result.retrain
        typer.echo(f"Retrained: v{r.new_version}, gate {r.gate}; {alias} is v{r.champion_after}")


@with_options(
    OptionGroup(
        WindowSource,
        "window",
        rename={**WINDOW, "uri": "--data"},
        required=("uri",),
        extra={"uri": {"help": "Newly labeled data: prediction log folder, file or saved dataset."}},
    )
)
def retrain(
    model: ModelOpt = None,
    alias: AliasOpt = "champion",
    repretrain: Annotated[
        bool, typer.Option("--repretrain", help="Pretrain a new encoder instead of starting from the champion.")
    ] = False,
    settings_from: Annotated[
        Literal["champion", "given"],
        typer.Option(
            "--settings",
            "--retrain-settings",  # the same choice's name on `zero2one monitor`
            help="Training settings: champion = those the champion was trained with (its recorded config; "
            "--config/--set give only workspace and tracking); given = --config/--set as they are.",
        ),
    ] = "champion",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
    given: list[Given] = (),
) -> None:
    """Fine-tune the champion again on its data plus newly labeled rows; the gate decides on promotion."""
    settings = resolve(config, set_, workspace, tracking_uri, given=given, model=monitor_settings())
    from core.errors import PipelineInputError
    from flows.retrain import retrain as retrain_flow

    # Set, not defaulted: retraining needs labels, so a window without that column is an error, not "unlabeled".
    window = settings.window.model_copy(update={"label_column": settings.window.label_column})
    start_embedded_prefect()
    try:
        r = retrain_flow(
            model_name=model or settings.registry.model_name,
            alias=alias,
            new_data=window,
            pipeline_config=pipeline_part(settings),
            repretrain=repretrain,
            settings=settings_from,
        )
    except PipelineInputError as e:
        fail(str(e))
    typer.echo(f"Added {r.data.added} labeled rows (dropped {r.data.dropped})")
    typer.echo(f"{r.model} v{r.champion_before} -> v{r.new_version}: gate {r.gate}")
    typer.echo(f"{alias}: v{r.champion_after} ({'promoted' if r.promoted else 'unchanged'})")
