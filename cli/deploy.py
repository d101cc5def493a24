"""`zero2one deploy`: the work pools in deployments/work-pools/, then the deployments in deployments/prefect.yaml.

Files are the source of truth and applying them is idempotent: a pool is created when missing and its base job
template updated only when the file changed; `prefect deploy` updates deployments in place (same ids, the
schedules and trigger automations of the file replacing the old ones). Deployments go through Prefect's own
`prefect deploy`, so the YAML means exactly what Prefect's documentation says it means.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import BaseModel

from cli.automations import AUTOMATIONS_FILE, AutomationsError, automation_specs, ensure_automations

ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
POOLS_DIR = ROOT / "deployments" / "work-pools"


class DeployError(RuntimeError):
    """Something the user has to fix before deploying (no server, a pool of the wrong type, a bad file)."""


class PoolSpec(BaseModel):
    """A work pool as its file describes it: `<type>[-<purpose>].json` is pool `zero2one-<type>[-<purpose>]`."""

    name: str
    type: str
    base_job_template: dict
    source: str


class Applied(BaseModel):
    pools: dict[str, str]  # pool name -> created / updated / unchanged
    deployments: list[str]  # flow/deployment names, as `prefect deployment run` takes them
    lost_runs: str = "unchanged"  # the automation that crashes flow runs whose machine is gone
    alerts: dict[str, str] = {}  # deployments/automations.yaml: automation name -> created / updated / unchanged


LOST_RUNS_AUTOMATION = "zero2one-crash-lost-flow-runs"
# A flow run sends a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (180 by default): three missed ones
# and a margin before it counts as lost.
LOST_AFTER_SECONDS = 600


def pool_specs(folder: Path = POOLS_DIR) -> list[PoolSpec]:
    specs = []
    for path in sorted(folder.glob("*.json")):
        try:
            template = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DeployError(f"{path}: not valid JSON: {e}") from None
        if not {"job_configuration", "variables"} <= set(template):
            raise DeployError(f"{path}: a base job template needs 'job_configuration' and 'variables'")
        specs.append(
            PoolSpec(
                name=f"zero2one-{path.stem}", type=path.stem.split("-")[0], base_job_template=template, source=str(path)
            )
        )
    return specs


def ensure_pools(specs: list[PoolSpec]) -> dict[str, str]:
    """Create missing pools; bring a changed base job template up to date; leave everything else alone."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    done = {}
    with get_client(sync_client=True) as client:
        for spec in specs:
            try:
                pool = client.read_work_pool(spec.name)
            except ObjectNotFound:
                client.create_work_pool(
                    WorkPoolCreate(name=spec.name, type=spec.type, base_job_template=spec.base_job_template)
                )
                done[spec.name] = "created"
                continue
            if pool.type != spec.type:
                raise DeployError(
                    f"work pool '{spec.name}' exists with type '{pool.type}' but {spec.source} is for type "
                    f"'{spec.type}'; delete the pool (prefect work-pool delete {spec.name}) or rename the file"
                )
            if pool.base_job_template != spec.base_job_template:
                client.update_work_pool(spec.name, WorkPoolUpdate(base_job_template=spec.base_job_template))
                done[spec.name] = "updated"
            else:
                done[spec.name] = "unchanged"
    return done


def _deployment_names(prefect_file: Path) -> list[str]:
    try:
        data = yaml.safe_load(prefect_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DeployError(f"{prefect_file}: cannot be read: {e}") from None
    return [d["name"] for d in data.get("deployments") or [] if d.get("name")]


def apply_deployments(prefect_file: Path = PREFECT_FILE) -> list[str]:
    """`prefect deploy --all` from the repository root (entrypoints are relative to it); then check they all exist."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    wanted = _deployment_names(prefect_file)
    if not wanted:
        raise DeployError(f"{prefect_file}: no named deployments")
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    said = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode != 0:
        raise DeployError(f"prefect deploy failed (exit code {proc.returncode}):\n{said}")
    # `prefect deploy` skips a file it cannot validate and still exits 0: check that everything arrived.
    with get_client(sync_client=True) as client:
        found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=wanted)))
        names = {d.name: f"{client.read_flow(d.flow_id).name}/{d.name}" for d in found}
    if missing := [n for n in wanted if n not in names]:
        raise DeployError(
            f"{prefect_file}: deployment(s) {', '.join(missing)} were not applied; prefect deploy said:\n{said}"
        )
    return [names[n] for n in wanted]


def lost_runs_automation(within_seconds: int):
    """Prefect's own recipe for "zombie" flow runs: no heartbeat for `within_seconds` after one -> Crashed.

    Nothing else marks a flow run crashed when its machine disappears (kill -9, a lost node or spot instance): it
    would stay Running, and a pipeline waiting on a placed stage would wait forever. Crashed, the stage's retry
    starts it again on a live worker (flows/placement.py), and training resumes from its last checkpoint.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return AutomationCore(
        name=LOST_RUNS_AUTOMATION,
        description="Crash flow runs whose heartbeats stopped (their process or machine is gone).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within_seconds,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="No heartbeat: its worker or machine is gone.")],
    )


def ensure_lost_runs_automation(within_seconds: int = LOST_AFTER_SECONDS) -> str:
    from prefect import get_client

    wanted = lost_runs_automation(within_seconds)
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(LOST_RUNS_AUTOMATION)
        if not found:
            client.create_automation(wanted)
            return "created"
        same = found[0].trigger.model_dump(exclude={"id"}) == wanted.trigger.model_dump(exclude={"id"})
        if same and found[0].actions == wanted.actions:
            return "unchanged"
        client.update_automation(found[0].id, wanted)
        return "updated"


def api_url() -> str:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise DeployError(
            "no Prefect server to deploy to: start one (`zero2one ui`, or `prefect server start`) and set "
            "PREFECT_API_URL, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url


def apply(
    prefect_file: Path = PREFECT_FILE,
    pools_dir: Path = POOLS_DIR,
    lost_after_seconds: int = LOST_AFTER_SECONDS,
    automations_file: Path = AUTOMATIONS_FILE,
    notify: str | None = None,
) -> Applied:
    """Pools first (deployments name them), then deployments, the automation that crashes lost runs, the alerts."""
    api_url()
    automation_specs(automations_file)  # a broken alerts file stops the deploy before it changes anything
    pools = ensure_pools(pool_specs(pools_dir))
    deployments = apply_deployments(prefect_file)
    lost = ensure_lost_runs_automation(lost_after_seconds)
    try:
        alerts = ensure_automations(automations_file, notify)
    except AutomationsError as e:
        raise DeployError(str(e)) from None
    return Applied(pools=pools, deployments=deployments, lost_runs=lost, alerts=alerts)


def deploy(
    prefect_file: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="Deployments to apply (Prefect's prefect.yaml format).", exists=True, dir_okay=False
        ),
    ] = PREFECT_FILE,
    pools_dir: Annotated[
        Path,
        typer.Option(metavar="DIR", help="Base job templates, one work pool per TYPE[-PURPOSE].json.", file_okay=False),
    ] = POOLS_DIR,
    notify: Annotated[
        str | None,
        typer.Option(
            metavar="BLOCK",
            help="Notification block <block-type>/<name> that the alerts of deployments/automations.yaml send to.",
        ),
    ] = None,
) -> None:
    """Create the work pools (if missing) and apply the deployments to the Prefect server at PREFECT_API_URL.

    Safe to run again: what did not change in the files stays as it is on the server.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        url = api_url()
        typer.echo(f"Prefect server: {url}")
        result = apply(prefect_file.resolve(), pools_dir.resolve(), notify=notify)
    except (DeployError, AutomationsError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for name, action in result.pools.items():
        typer.echo(f"work pool   {name:28s} {action}")
    for name in result.deployments:
        typer.echo(f"deployment  {name}")
    typer.echo(f"automation  {LOST_RUNS_AUTOMATION:28s} {result.lost_runs}")
    for name, action in result.alerts.items():
        typer.echo(f"automation  {name:28s} {action}")
    typer.echo("Run flows from the UI, or: prefect deployment run 'pipeline/pipeline'")
    typer.echo("Start a local worker:      prefect worker start --pool zero2one-process")
