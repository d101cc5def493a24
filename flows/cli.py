"""`zero2one`: the command line.

Heavy modules (Prefect, torch, MLflow) are imported inside the commands: `--help` stays fast,
and the embedded defaults (Prefect's home in the workspace) are set before Prefect is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_common import EXIT_INPUT, EXIT_REFUSED, run_log
from flows.cli_common import fail as _fail
from flows.cli_common import load_settings as _prepare
from flows.cli_monitor import monitor, retrain
from flows.cli_serve import serve
from flows.deploy import deploy
from flows.environment import configure_environment, start_embedded_prefect

app = typer.Typer(
    help="zero2one: data -> tokenizer -> pretraining -> fine-tuning -> evaluation -> MLflow registry, "
    "as retryable Prefect tasks. Everything lives in one workspace folder (default ./.zero2one).",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML preset, e.g. configs/tiny.yaml.", exists=True)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one setting, e.g. --set finetune.epochs=2 (repeatable)."),
]


RUN_EXIT_CODES = (
    f"Exit codes: 0 the new version passed the gate; {EXIT_REFUSED} the gate refused it (it is registered, the "
    f"champion is unchanged); {EXIT_INPUT} bad config, override or data (nothing was trained); 1 anything else."
)


@app.command(epilog=RUN_EXIT_CODES)
def run(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on the console too.")] = False,
) -> None:
    """Run the whole pipeline and print where the model is and how good it is.

    Stages that already completed with the same inputs and code are reused, so re-running after a
    failure continues where it stopped. The full log, tracebacks included, is kept in the workspace's logs/ folder.
    """
    cfg = _prepare(config, set_, preflight=True)
    from flows.pipeline import pipeline
    from flows.summary import print_summary
    from tasks.errors import PipelineInputError

    with run_log(cfg.workspace.resolved().local_dir("logs"), verbose) as log_path:
        start_embedded_prefect()
        try:
            result = pipeline(cfg)
        except PipelineInputError as e:
            _fail(f"{e}\n  (full log: {log_path})")
    print_summary(result)
    print_outcome(result)
    if not result.verdict.passed:
        raise typer.Exit(EXIT_REFUSED)


def print_outcome(result) -> None:
    """The decision, as prominent as it matters: promoted in green, refused in red with the gate's reasons."""
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel

    v, reg = result.verdict, result.registered
    champion = f"v{v.champion_version}" if v.champion_version else "none"
    if result.promotion:
        was = f"was {champion}" if v.champion_version else "the first"
        body, style, title = f"{reg.name} v{reg.version} is the champion ({was})", "green", "promoted"
    elif v.passed:
        body = f"{reg.name} v{reg.version} passed the gate; not promoted (gate.promote=false)"
        style, title = "yellow", "passed, not promoted"
    else:
        reasons = "\n".join(f"  - {escape(r)}" for r in v.reasons)
        body = f"{reg.name} v{reg.version} was refused by the gate; the champion is still {champion}.\n{reasons}"
        style, title = "red", f"refused (exit code {EXIT_REFUSED})"
    Console().print(Panel(body, title=title, title_align="left", border_style=f"bold {style}", style=style))


@app.command("show-config")
def show_config(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the complete, validated configuration (defaults + file + overrides) as YAML."""
    import yaml

    cfg = _prepare(config, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@app.command("demo-data")
def demo_data(out: Annotated[Path, typer.Argument(help="Folder to write the demo CSVs and corpus to.")]) -> None:
    """Write the bundled synthetic review data (reviews, shifted reviews, pretraining corpus)."""
    from tasks.demo_data import write_demo_data

    paths = write_demo_data(out)
    for name, path in paths.model_dump().items():
        typer.echo(f"{name:16s} {path}")


@app.command()
def predict(
    texts: Annotated[list[str], typer.Argument(help="Texts to classify.")],
    model: Annotated[str, typer.Option(help="Registered model and alias or version: NAME@alias or NAME/3.")] = (
        "zero2one-classifier@champion"
    ),
    workspace: Annotated[str, typer.Option(help="Workspace whose MLflow registry to use.")] = ".zero2one",
) -> None:
    """Classify texts with a registered model (loaded the way any MLflow user would)."""
    configure_environment(workspace)
    import mlflow

    from tasks.tracking import Tracking, TrackingConfig
    from tasks.workspace import Workspace

    Tracking.resolve(TrackingConfig(), Workspace(root=workspace).resolved()).activate()
    import pandas as pd

    out = mlflow.pyfunc.load_model(f"models:/{model}").predict(pd.DataFrame({"text": texts}))
    typer.echo(out.to_string(index=False))


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registered model name, e.g. zero2one-classifier.")]
WorkspaceOpt = Annotated[str, typer.Option(help="Workspace whose MLflow registry to use.")]


@app.command()
def promote(
    model: ModelOpt,
    version: Annotated[str, typer.Option(help="Version number or alias (e.g. 3 or challenger).")],
    force: Annotated[bool, typer.Option(help="Promote even if the version did not pass the gate.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; required with --force, kept in the history.")] = None,
    workspace: WorkspaceOpt = ".zero2one",
) -> None:
    """Make a version the champion; the current champion becomes `previous-champion`."""
    if force and not (reason or "").strip():
        _fail("--force needs --reason TEXT: a forced promotion skips the gate, and the history must say why")
    configure_environment(workspace)
    from flows.promote import promote_flow
    from tasks.errors import PipelineInputError

    try:
        result = promote_flow(model=model, version=version, force=force, reason=reason, workspace=workspace)
    except PipelineInputError as e:
        _fail(str(e))
    _print_move(result)


@app.command()
def rollback(
    model: ModelOpt,
    reason: Annotated[str | None, typer.Option(help="Why, kept in the history.")] = None,
    workspace: WorkspaceOpt = ".zero2one",
) -> None:
    """Give `champion` back to the `previous-champion` (one step; the two aliases swap)."""
    configure_environment(workspace)
    from flows.promote import rollback_flow
    from tasks.errors import PipelineInputError

    try:
        result = rollback_flow(model=model, reason=reason, workspace=workspace)
    except PipelineInputError as e:
        _fail(str(e))
    _print_move(result)


def _print_move(result) -> None:
    if not result.changed:
        typer.echo(f"{result.model}: {result.reason}; nothing changed")
        return
    typer.echo(
        f"{result.model}: champion {'v' + result.previous_version if result.previous_version else 'none'} -> "
        f"v{result.version} "
        f"({result.action} #{result.seq}{', forced' if result.forced else ''}: {result.reason})"
    )


@app.command()
def ui(
    workspace: Annotated[str, typer.Option(help="Workspace folder.")] = ".zero2one",
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect UI.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Start the Prefect and MLflow UIs on 127.0.0.1 for the workspace (Ctrl-C stops both)."""
    configure_environment(workspace)
    from tasks.workspace import Workspace

    ws = Workspace(root=workspace).resolved()
    # The UI asks the API at port 4200 unless told otherwise: with --prefect-port it would find no server.
    env = {**os.environ, "PREFECT_UI_API_URL": f"http://127.0.0.1:{prefect_port}/api"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            env=env,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "ui",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--backend-store-uri",
                ws.tracking_uri(),
            ],
            env=env,
        ),
    ]
    typer.echo(f"Prefect UI: http://127.0.0.1:{prefect_port}   MLflow UI: http://127.0.0.1:{mlflow_port}")
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()


# Commands that live in their own modules (same lazy-import style).
app.command()(serve)
app.command()(monitor)
app.command()(retrain)
app.command()(deploy)


if __name__ == "__main__":
    app()
