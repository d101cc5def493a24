"""`zero2one`: the command line. One module per command group; this one only assembles them.

    run, show-config, demo-data   cli/run.py (the pipeline; summary and outcome in cli/summary.py)
    predict, promote, rollback    cli/registry.py
    approve, reject               cli/approval.py (gate.approval: required)
    serve                         cli/serve.py (options generated from serving/config.py's ServeConfig)
    monitor, retrain              cli/monitor.py (options generated from MonitorConfig and WindowSource)
    ui                            cli/ui.py
    deploy                        cli/deploy.py (work pools, deployments/prefect.yaml, automations)

Every command that reads a workspace takes the same --config/--set and --workspace/--tracking-uri, resolved by
`cli/settings.py:resolve`. Heavy modules (Prefect, torch, MLflow) are imported inside the commands: `--help`
stays fast, and the embedded defaults (Prefect's home in the workspace) are set before Prefect is imported.
"""

from __future__ import annotations

import typer

from cli import approval, monitor, registry, run, serve, ui
from cli.deploy import deploy
from core.workspace import DEFAULT_ROOT

app = typer.Typer(
    help="zero2one: data -> tokenizer -> pretraining -> fine-tuning -> evaluation -> MLflow registry, "
    f"as retryable Prefect tasks. Everything lives in one workspace folder (default ./{DEFAULT_ROOT}).",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's own help: wraps to any width, never cuts an option name or its help
    pretty_exceptions_enable=False,
)

app.command(epilog=run.RUN_EXIT_CODES)(run.run)
app.command("show-config")(run.show_config)
app.command("demo-data")(run.demo_data)
app.command()(registry.predict)
app.command()(registry.promote)
app.command()(registry.rollback)
app.command()(approval.approve)
app.command()(approval.reject)
app.command()(ui.ui)
app.command()(serve.serve)
app.command()(monitor.monitor)
app.command()(monitor.retrain)
app.command()(deploy)


if __name__ == "__main__":
    app()
