"""`zero2one run`, `show-config` and `demo-data`: the pipeline from the command line.

Heavy modules (Prefect, torch, MLflow) are imported inside the commands, after `resolve` has set up the embedded
environment (Prefect's home in the workspace): Prefect reads it at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import EXIT_INPUT, EXIT_REFUSED, fail
from cli.environment import start_embedded_prefect
from cli.run_log import run_log
from cli.settings import ConfigOpt, SetOpt, TrackingUriOpt, WorkspaceOpt, resolve

RUN_EXIT_CODES = (
    f"Exit codes: 0 the new version passed the gate (or gate.baseline_as_champion made the TF-IDF baseline the "
    f"first champion); {EXIT_REFUSED} the gate refused it (it is registered, the champion is unchanged); "
    f"{EXIT_INPUT} bad config, override or data (nothing was trained); 1 anything else."
)


def run(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on the console too.")] = False,
) -> None:
    """Run the whole pipeline and print where the model is and how good it is.

    Stages that already completed with the same inputs and code are reused, so re-running after a
    failure continues where it stopped. The full log, tracebacks included, is kept in the workspace's logs/ folder.
    """
    cfg = resolve(config, set_, workspace, tracking_uri, preflight=True)
    from cli.summary import print_outcome, print_summary
    from core.errors import PipelineInputError
    from flows.pipeline import pipeline

    with run_log(cfg.workspace.resolved().local_dir("logs"), verbose) as log_path:
        start_embedded_prefect()
        try:
            result = pipeline(cfg)
        except PipelineInputError as e:
            fail(f"{e}\n  (full log: {log_path})")
    print_summary(result)
    print_outcome(result)
    if not result.verdict.passed and not result.baseline_promoted:
        raise typer.Exit(EXIT_REFUSED)


def show_config(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Print the complete, validated configuration (defaults + file + overrides) as YAML."""
    import yaml

    cfg = resolve(config, set_, workspace, tracking_uri)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def demo_data(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the demo CSVs and corpus to.")],
) -> None:
    """Write the bundled synthetic review data (reviews, shifted reviews, pretraining corpus)."""
    from tasks.data.demo import write_demo_data

    paths = write_demo_data(out)
    for name, path in paths.model_dump().items():
        typer.echo(f"{name:16s} {path}")
