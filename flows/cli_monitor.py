"""`zero2one monitor` and `zero2one retrain`: the command-line side of closing the loop.

Plain functions in the style of `flows/cli.py`, registered there on the main app (`app.command()(monitor)`).
Heavy modules are imported inside, after the embedded environment is set up. Self-contained on
purpose (no import of `flows.cli`), so registering them there cannot create an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli_common import fail as _fail
from flows.cli_common import load_settings as _settings
from flows.environment import start_embedded_prefect

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML preset (workspace, tracking, training settings).", exists=True),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override one pipeline setting, e.g. --set finetune.epochs=2.")
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registered model name.")]
AliasOpt = Annotated[str, typer.Option(help="Alias of the version to monitor / retrain.")]
SinceOpt = Annotated[str | None, typer.Option(help="Window start, ISO 8601 (UTC if no zone), inclusive.")]
UntilOpt = Annotated[str | None, typer.Option(help="Window end, ISO 8601, exclusive.")]
LastOpt = Annotated[int | None, typer.Option("--last", help="Only the newest N rows of the window.", min=1)]
TextColOpt = Annotated[str, typer.Option(help="Column holding the text.")]
LabelColOpt = Annotated[str | None, typer.Option(help="Column holding true labels, if the window has them.")]
SplitOpt = Annotated[str | None, typer.Option(help="Split of a source with splits (default: all).")]


def _window(uri, since, until, last, text_column, label_column, split):
    from pydantic import ValidationError

    from tasks.monitoring.windows import WindowSource

    fields = {"uri": uri, "since": since, "until": until, "last_n": last, "text_column": text_column, "split": split}
    if label_column is not None:
        fields["label_column"] = label_column
    try:
        return WindowSource(**fields)
    except ValidationError as e:
        _fail("; ".join(f"--{'-'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))


def monitor(
    window: Annotated[
        str | None,
        typer.Option(help="Prediction log folder, file or saved dataset; default: the workspace's prediction log."),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    text_column: TextColOpt = "text",
    label_column: LabelColOpt = None,
    split: SplitOpt = None,
    model: ModelOpt = "zero2one-classifier",
    alias: AliasOpt = "champion",
    min_rows: Annotated[int, typer.Option(help="Smaller windows are reported as insufficient data.", min=1)] = 200,
    drift_share: Annotated[float, typer.Option(help="Drift when this share of the signals fire.")] = 0.3,
    max_accuracy_drop: Annotated[float, typer.Option(help="Drift when accuracy falls by more than this.")] = 0.05,
    retrain_on_drift: Annotated[
        bool,
        typer.Option("--retrain-on-drift", help="On drift, retrain on the window's labeled rows now."),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check a window of production inputs for drift against what the champion was trained on.

    Prints the verdict and the signals; on drift emits the Prefect event zero2one.drift.detected.
    """
    settings = _settings(config, set_)
    source = _window(window, since, until, last, text_column, label_column, split)
    from pydantic import ValidationError

    from flows.monitor import monitor as monitor_flow
    from tasks.errors import PipelineInputError
    from tasks.monitoring.config import MonitorConfig
    from tasks.monitoring.policy import DriftPolicy

    try:
        policy = DriftPolicy(min_rows=min_rows, drift_share=drift_share, max_accuracy_drop=max_accuracy_drop)
    except ValidationError as e:
        _fail(
            "; ".join(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors())
        )
    start_embedded_prefect()
    try:
        result = monitor_flow(
            model_name=model,
            alias=alias,
            window=source,
            config=MonitorConfig(policy=policy),
            retrain_on_drift=retrain_on_drift,
            pipeline_config=settings,
        )
    except PipelineInputError as e:
        _fail(str(e))
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


def retrain(
    data: Annotated[str, typer.Option(help="Newly labeled data: prediction log folder, file or saved dataset.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    text_column: TextColOpt = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the true labels.")] = "true_label",
    split: SplitOpt = None,
    model: ModelOpt = "zero2one-classifier",
    alias: AliasOpt = "champion",
    repretrain: Annotated[
        bool, typer.Option("--repretrain", help="Pretrain a new encoder instead of starting from the champion.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune the champion again on its data plus newly labeled rows; the gate decides on promotion."""
    settings = _settings(config, set_)
    source = _window(data, since, until, last, text_column, label_column, split)
    from flows.retrain import retrain as retrain_flow
    from tasks.errors import PipelineInputError

    start_embedded_prefect()
    try:
        r = retrain_flow(
            model_name=model, alias=alias, new_data=source, pipeline_config=settings, repretrain=repretrain
        )
    except PipelineInputError as e:
        _fail(str(e))
    typer.echo(f"Added {r.data.added} labeled rows (dropped {r.data.dropped})")
    typer.echo(f"{r.model} v{r.champion_before} -> v{r.new_version}: gate {r.gate}")
    typer.echo(f"{alias}: v{r.champion_after} ({'promoted' if r.promoted else 'unchanged'})")
