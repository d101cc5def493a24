"""deployments/ on a real `prefect server start` and a real process worker, both on 127.0.0.1.

The server gets a free port and a temporary PREFECT_HOME; `zero2one deploy`'s code creates the pools and applies
prefect.yaml; flow runs are created through the endpoint the UI's "Run" button calls. Server and worker are stopped
whatever happens (module fixtures). The templates of the GPU pools are checked without a server: rendered the way
a worker renders them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from cli import deploy
from flows.config import load_config

ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
# The tiny preset, shrunk further: the run only has to go through every stage.
SERVER_TINY = [
    "data.max_rows=600",
    "tokenizer.vocab_size=500",
    "pretrain.max_steps=8",
    "pretrain.save_steps=8",
    "pretrain.optim.warmup_steps=1",
    "finetune.epochs=1",
    "finetune.optim.warmup_steps=1",
]


POOLS = {
    "zero2one-process": "process",
    "zero2one-process-gpu": "process",
    "zero2one-kubernetes": "kubernetes",
    "zero2one-kubernetes-gpu": "kubernetes",
    "zero2one-docker": "docker",
    "zero2one-docker-gpu": "docker",
}
STAGE_POOLS = {"zero2one-process", "zero2one-process-gpu", "zero2one-kubernetes-gpu", "zero2one-docker-gpu"}
TRAINING = ("pretrain", "tune", "finetune")


def _spec() -> dict:
    return yaml.safe_load(PREFECT_FILE.read_text())


def _deployment_spec(name: str) -> dict:
    return next(d for d in _spec()["deployments"] if d["name"] == name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check: Callable[[], object], timeout: float, every: float = 1.0, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


class _Process:
    """A subprocess in its own process group, output to a file; stop() ends the group (worker + its flow runs)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()


class Server:
    def __init__(self, url: str, env: dict[str, str], home: Path):
        self.url, self.env, self.home = url, env, home

    def start_worker(self, pool: str) -> _Process:
        env = {**self.env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        return _Process(cmd, env, self.home / f"worker-{pool}.log")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """`prefect server start` on a free port of 127.0.0.1, its home in a temp dir; this process talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    Path(env["PREFECT_HOME"]).mkdir()
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = _Process(cmd, env, home / "server.log")
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the Prefect server", healthy, timeout=180, log=proc.log)
        with pytest.MonkeyPatch.context() as mp, temporary_settings({PREFECT_API_URL: url}):
            mp.setenv("PREFECT_API_URL", url)  # for `prefect deploy`, which `zero2one deploy` runs
            yield Server(url, env, home)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def applied(server) -> deploy.Applied:
    return deploy.apply()


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


@pytest.mark.server
def test_pipeline_runs_from_the_ui_api_on_a_process_worker(server, applied, tmp_path):
    from mlflow import MlflowClient

    assert set(applied.pools) == set(POOLS)
    assert "pipeline/pipeline" in applied.deployments
    assert {f"stage/{pool}" for pool in POOLS if pool in STAGE_POOLS} <= set(applied.deployments)
    ws = tmp_path / "ws"
    tracking_uri = f"sqlite:///{ws / 'mlflow.db'}"
    # Evaluation placed on the same pool: it runs as its own `stage` flow run, a child of the pipeline's run.
    placed = ["placement.stages.evaluate.pool=zero2one-process"]
    config = load_config(
        ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", f"tracking.uri={tracking_uri}", *SERVER_TINY, *placed]
    )
    worker = server.start_worker("zero2one-process")
    try:
        with _client() as client:
            deployment = client.read_deployment_by_name("pipeline/pipeline")
            # What the UI's "Run" button does: POST /deployments/{id}/create_flow_run with the form's values.
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters={"config": config.model_dump(mode="json")}
            )
            final = _wait(
                "the pipeline flow run to finish",
                lambda: (r := client.read_flow_run(run.id)).state.is_final() and r,
                timeout=900,
                every=3,
                log=worker.log,
            )
        assert final.state.is_completed(), (
            f"{final.state.name}: {final.state.message}\n{worker.log.read_text()[-4000:]}"
        )
        with _client() as client:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
            )
        assert [(c.name, c.state.name, c.work_pool_name) for c in children] == [
            ("evaluate-on-zero2one-process", "Completed", "zero2one-process")
        ]
    finally:
        worker.stop()
    versions = MlflowClient(tracking_uri, registry_uri=tracking_uri).search_model_versions(
        f"name='{config.registry.model_name}'"
    )
    # The fine-tuned model is version 1; a gate that finds the TF-IDF baseline better registers it too
    # (tasks/judging/gate.py).
    # (Compared by value: the tag names are being renamed into core/registry_names.py.)
    kinds = {str(v.version): {"finetuned", "baseline"} & set(v.tags.values()) for v in versions}
    assert kinds in ({"1": {"finetuned"}}, {"1": {"finetuned"}, "2": {"baseline"}}), kinds
    assert all(str(run.id) in v.tags.values() for v in versions)  # registered by this flow run


@pytest.mark.server
def test_invalid_parameters_are_rejected_with_the_field_named(applied):
    from prefect.exceptions import PrefectHTTPStatusError

    with _client() as client:
        deployment = client.read_deployment_by_name("pipeline/pipeline")
        for bad, says in [
            ({"pretrain": {"max_steps": 0}}, "field 'config.pretrain.max_steps'"),
            ({"finetune": {"method": "qlora"}}, "field 'config.finetune.method'"),
            ({"pretrain": {"max_stpes": 10}}, "('max_stpes' was unexpected)"),
        ]:
            with pytest.raises(PrefectHTTPStatusError) as err:
                client.create_flow_run_from_deployment(deployment.id, parameters={"config": bad})
            assert err.value.response.status_code == 409
            detail = err.value.response.json()["detail"]
            assert "Validation failed" in detail and says in detail, detail


@pytest.mark.server
def test_deploying_again_changes_nothing(applied):
    with _client() as client:

        def snapshot() -> dict:
            out = {}
            for name in applied.deployments:
                d = client.read_deployment_by_name(name)
                schedules = sorted(json.dumps(s.schedule.model_dump(mode="json"), sort_keys=True) for s in d.schedules)
                out[name] = (d.id, d.work_pool_name, d.parameters, d.job_variables, d.pull_steps, schedules)
            automations = sorted(a.name for a in client.read_automations())
            pools = {p.name: (p.type, p.base_job_template) for p in client.read_work_pools()}
            return {"deployments": out, "automations": automations, "pools": pools}

        before = snapshot()
        again = deploy.apply()
        assert set(again.pools.values()) == {"unchanged"} and again.lost_runs == "unchanged"
        assert snapshot() == before


@pytest.mark.server
def test_retrain_and_monitor_run_on_schedules(applied):
    with _client() as client:
        for name in ("retrain/retrain", "monitor/monitor"):
            deployment = client.read_deployment_by_name(name)
            crons = [s.schedule.cron for s in deployment.schedules if s.active]
            wanted = [s["cron"] for s in _deployment_spec(name.split("/")[1])["schedules"]]
            assert crons == wanted, name


@pytest.mark.server
def test_drift_event_starts_a_retrain_run(server, applied):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _client() as client:
        retrain = client.read_deployment_by_name("retrain/retrain")
        only_retrain = DeploymentFilter(id=DeploymentFilterId(any_=[retrain.id]))

        def triggered():  # the weekly schedule also creates (auto-scheduled) runs; count the others
            return [r for r in client.read_flow_runs(deployment_filter=only_retrain) if not r.auto_scheduled]

        assert triggered() == []
        # What flows/monitor.py sends (abridged).
        payload = {
            "model": "zero2one-classifier",
            "alias": "champion",
            "window": {"last_n": 500},
            "drift_share": 0.8,
            "workspace": "s3://team-bucket/zero2one",
        }
        subprocess.run(
            [sys.executable, "-m", "prefect", "event", "emit", "zero2one.drift.detected"]
            + ["--resource-id", "zero2one.model.zero2one-classifier", "--payload", json.dumps(payload)],
            env=server.env,
            check=True,
            capture_output=True,
        )
        runs = _wait("the automation to create a retrain run", triggered, 90)
    assert len(runs) == 1
    params = runs[0].parameters
    assert (params["model_name"], params["alias"]) == ("zero2one-classifier", "champion")
    assert params["new_data"] == {"last_n": 500}  # the window the monitor judged, passed on as a typed parameter
    # ... in the workspace the monitor read it from, not the worker's default folder
    assert params["pipeline_config"]["workspace"]["root"] == "s3://team-bucket/zero2one"


def _render(template: dict, job_variables: dict) -> dict:
    """What a worker does with a pool's base job template and a deployment's job variables."""
    from prefect.utilities.templating import apply_values
    from prefect.workers.base import BaseJobConfiguration

    variables = BaseJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    return apply_values(template["job_configuration"], {**variables, **job_variables})


def test_gpu_pools_ask_for_the_gpus_their_deployments_choose():
    """The pipelines run on CPU pools; their training stages ask the GPU pools for GPUs (rendered as a worker would)."""
    pools = {spec.name: spec for spec in deploy.pool_specs()}
    assert {name: spec.type for name, spec in pools.items()} == POOLS
    gpu = _deployment_spec("pipeline-gpu")
    assert gpu["work_pool"]["name"] == "zero2one-kubernetes"
    cpu_pod = _render(pools["zero2one-kubernetes"].base_job_template, {})["job_manifest"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"] and cpu_pod["tolerations"] == []
    placed = gpu["parameters"]["config"]["placement"]["stages"]
    assert {s: p["pool"] for s, p in placed.items()} == dict.fromkeys(TRAINING, "zero2one-kubernetes-gpu")
    job = _render(pools["zero2one-kubernetes-gpu"].base_job_template, placed["pretrain"]["job_variables"])
    pod = job["job_manifest"]["spec"]["template"]["spec"]
    gpus = placed["pretrain"]["job_variables"]["gpu_limit"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": gpus}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" in pod and pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    # One training process per GPU the pod gets.
    config = gpu["parameters"]["config"]
    assert config["pretrain"]["nproc_per_node"] == config["finetune"]["nproc_per_node"] == gpus

    docker = _deployment_spec("pipeline-docker-gpu")
    assert docker["work_pool"]["name"] == "zero2one-docker"
    cpu_job = _render(pools["zero2one-docker"].base_job_template, docker["work_pool"]["job_variables"])
    assert "device_requests" not in cpu_job["container_create_kwargs"]
    placed = docker["parameters"]["config"]["placement"]["stages"]
    assert {s: p["pool"] for s, p in placed.items()} == dict.fromkeys(TRAINING, "zero2one-docker-gpu")
    stage = _deployment_spec("zero2one-docker-gpu")
    job = _render(
        pools["zero2one-docker-gpu"].base_job_template,
        {**stage["work_pool"]["job_variables"], **placed["pretrain"]["job_variables"]},
    )
    (request,) = job["container_create_kwargs"]["device_requests"]
    assert request == {"driver": "nvidia", "count": 1, "capabilities": [["gpu"]]}
    assert job["volumes"] == cpu_job["volumes"] == ["zero2one-workspace:/workspace"]  # one workspace for both


def test_every_placed_pool_has_its_stage_deployment():
    """A stage placed on pool P runs as deployment `stage/P`: each pool a pipeline names must have one."""
    stages = [d for d in _spec()["deployments"] if d["entrypoint"] == "flows/stage.py:run_stage"]
    stage_pools = {d["work_pool"]["name"] for d in stages}
    assert stage_pools == STAGE_POOLS
    assert all(d["name"] == d["work_pool"]["name"] for d in _spec()["deployments"] if d["name"] in stage_pools)
    for d in _spec()["deployments"]:
        if placement := d.get("parameters", {}).get("config", {}).get("placement"):
            assert {p["pool"] for p in placement["stages"].values()} <= stage_pools, d["name"]


def test_gpu_deployment_uses_the_gpu_preset():
    """pipeline-gpu spells out configs/base.yaml (a deployment cannot include a file): they must not drift apart."""
    from flows.config import validate

    params = _deployment_spec("pipeline-gpu")["parameters"]["config"]
    gpu, base = validate(params), load_config(ROOT / "configs" / "base.yaml")
    for section in ("data", "tokenizer", "registry"):
        assert getattr(gpu, section) == getattr(base, section), section
    for section in ("pretrain", "finetune"):
        assert getattr(gpu, section).model_dump(exclude={"nproc_per_node"}) == getattr(base, section).model_dump(
            exclude={"nproc_per_node"}
        ), section


def test_image_holds_every_package_the_project_installs():
    """`pip install -e .` in the image finds only what the Dockerfile copied: a missing package fails at run time."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {
        line.split()[1]
        for line in (ROOT / "deployments" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY")
    }
    assert {pattern.rstrip("*") for pattern in include} <= copied


def test_serving_manifest_runs_a_valid_serve_command():
    """The Kubernetes manifest's arguments parse with `zero2one serve`'s own options and types, env vars filled in."""
    import re

    import typer

    from cli.app import app

    docs = list(yaml.safe_load_all((ROOT / "deployments" / "serving" / "kubernetes.yaml").read_text()))
    env = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["zero2one", "serve"]
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    serve = typer.main.get_command(app).commands["serve"]
    params = serve.make_context("serve", args).params  # raises on an unknown option
    from serving.config import ServeConfig

    ServeConfig(**{k: v for k, v in params.items() if k in ServeConfig.model_fields and v is not None})  # types
    port = container["ports"][0]["containerPort"]
    assert int(params["port"]) == port and params["host"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}
    mount = container["volumeMounts"][0]["mountPath"]
    assert params["journal"].startswith(mount + "/")  # the journal lives on the volume that outlives the container


def test_compose_file_runs_the_tested_topology():
    """deployments/compose.yaml stays in step with the pools, deployments and settings tests/test_scale.py runs."""
    compose = yaml.safe_load((ROOT / "deployments" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "s3", "mlflow", "prefect", "deploy", "worker-cpu", "worker-gpu"}
    workers = {name: s["command"] for name, s in services.items() if name.startswith("worker")}
    pools = {name: cmd[cmd.index("--pool") + 1] for name, cmd in workers.items()}
    placed = _deployment_spec("pipeline-process-gpu")
    assert pools == {
        "worker-cpu": placed["work_pool"]["name"],
        "worker-gpu": placed["parameters"]["config"]["placement"]["stages"]["pretrain"]["pool"],
    }
    assert set(pools.values()) <= set(POOLS) and all(services[w]["command"][-1] == "process" for w in pools)
    (gpu,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert "deploy" not in services["worker-cpu"]
    # Every published port on loopback only; every client finds the same S3 endpoint and result storage.
    ports = [p for s in services.values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    endpoint = services["s3"]["environment"]["AWS_ENDPOINT_URL"]
    for name in ("mlflow", "deploy", "worker-cpu", "worker-gpu"):
        assert services[name]["environment"]["AWS_ENDPOINT_URL"] == endpoint, name
    for name in pools:
        env = services[name]["environment"]
        assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "remote-file-system/zero2one-results"
        assert env["PREFECT_API_URL"].startswith("http://prefect:4200")
    mlflow = " ".join(services["mlflow"]["command"])
    assert "--artifacts-destination=s3://zero2one/mlflow" in mlflow and "postgresql+psycopg2://" in mlflow
    prefect_db = services["prefect"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://")
    assert "zero2one deploy" in services["deploy"]["command"][-1]
    assert "CREATE DATABASE mlflow" in compose["configs"]["databases"]["content"]
