"""`zero2one ui`: the Prefect and MLflow UIs for a workspace, on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from cli.settings import ConfigOpt, SetOpt, TrackingUriOpt, WorkspaceOpt, resolve


def ui(
    prefect_port: Annotated[int, typer.Option(metavar="PORT", help="Port of the Prefect UI.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(metavar="PORT", help="Port of the MLflow UI.")] = 5000,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workspace: WorkspaceOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Start the Prefect and MLflow UIs on 127.0.0.1 for the workspace (Ctrl-C stops both).

    With a tracking server (--tracking-uri http://...), only Prefect's UI starts: MLflow's is that server's.
    """
    cfg = resolve(config, set_, workspace, tracking_uri)
    from core.tracking import Tracking

    store = Tracking.resolve(cfg.tracking, cfg.workspace.resolved()).uri
    # The UI asks the API at port 4200 unless told otherwise: with --prefect-port it would find no server.
    env = {**os.environ, "PREFECT_UI_API_URL": f"http://127.0.0.1:{prefect_port}/api"}
    prefect = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)]
    commands = [prefect]
    if store.startswith(("http://", "https://")):
        mlflow_url = store
    else:
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        mlflow = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(mlflow_port)]
        commands.append([*mlflow, "--backend-store-uri", store])
    procs = [subprocess.Popen(command, env=env) for command in commands]
    typer.echo(f"Prefect UI: http://127.0.0.1:{prefect_port}   MLflow UI: {mlflow_url}")
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
