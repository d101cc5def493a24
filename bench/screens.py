"""Screenshots of what users see, for the README: `make screens` (needs Debian's `chromium`).

Runs the pipeline twice in a scratch workspace through the CLI (the second run trains far less, so the gate
refuses it), a monitor run on shifted reviews (drift), then starts `zero2one ui` and photographs the Prefect
runs list, the refused run, the gate and evaluation artifacts, the MLflow runs table, models list and model
version page, and the Evidently report, in headless Chromium. The PNGs go to docs/screens/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screens"
MODEL = "zero2one-classifier"
# The second run trains far less than the first: the gate must refuse it.
WORSE = ["pretrain.max_steps=20", "pretrain.save_steps=10", "finetune.epochs=1"]


def zero2one(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "zero2one"), *args]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed with exit code {proc.returncode}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def screenshot(url: str, name: str, height: int = 1000, settle_ms: int = 12000) -> None:
    """One PNG of `url` in headless Chromium (flags as this machine needs them: no sandbox as root, no network)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size=1440,{height}",
                f"--virtual-time-budget={settle_ms}",
                f"--screenshot={OUT / name}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"  {name}: {url}")


def prefect_ids(api: str) -> dict[str, str]:
    """The newest refused pipeline run and the gate/evaluate artifacts, from Prefect's REST API."""
    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 20}).json()
    pipelines = [r for r in runs if r["name"].startswith("pipeline") or "pipeline" in r.get("tags", [])]
    refused = next((r for r in pipelines if "refused" in r.get("tags", []) or "refused" in r["name"]), None)
    ids = {"refused_run": (refused or (pipelines or runs)[0])["id"]}
    for key in ("gate", "evaluate-summary"):
        found = httpx.post(f"{api}/artifacts/latest/filter", json={"artifacts": {"key": {"any_": [key]}}}).json()
        if found:
            ids[key] = found[0]["latest_id"]
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="Reuse a workspace (default: a new scratch folder).")
    parser.add_argument("--skip-runs", action="store_true", help="Only photograph an existing --workspace.")
    args = parser.parse_args()
    ws = args.workspace or Path(tempfile.mkdtemp(prefix="zero2one-screens-")) / "ws"
    OUT.mkdir(parents=True, exist_ok=True)
    where = ["--set", f"workspace.root={ws}"]
    if not args.skip_runs:
        zero2one("run", "--config", "configs/tiny.yaml", *where)
        zero2one("run", "--config", "configs/tiny.yaml", *where, *[a for s in WORSE for a in ("--set", s)], check=False)
        zero2one("demo-data", str(ws / "demo-copy"))
        window = ws / "demo-copy" / "reviews_shifted.csv"
        zero2one("monitor", "--window", str(window), "--label-column", "label", *where, check=False)

    prefect_port, mlflow_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    ui = subprocess.Popen(
        [str(Path(sys.executable).parent / "zero2one"), "ui", "--workspace", str(ws)]
        + ["--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)],
        cwd=ROOT,
        env=env,
    )
    try:
        prefect, mlflow_ui = f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}"
        wait_http(f"{prefect}/api/health")
        wait_http(mlflow_ui)
        ids = prefect_ids(f"{prefect}/api")
        screenshot(f"{prefect}/runs", "prefect-runs.png")
        screenshot(f"{prefect}/runs/flow-run/{ids['refused_run']}", "prefect-refused-run.png", height=1400)
        for key in ("gate", "evaluate-summary"):
            if key in ids:
                screenshot(f"{prefect}/artifacts/artifact/{ids[key]}", f"prefect-{key}.png", height=1200)
        screenshot(f"{mlflow_ui}/#/experiments/1", "mlflow-runs.png")
        screenshot(f"{mlflow_ui}/#/models", "mlflow-models.png")
        screenshot(f"{mlflow_ui}/#/models/{MODEL}/versions/2", "mlflow-model-version.png", height=1400)
        reports = sorted(ws.rglob("*.html"), key=lambda p: p.stat().st_mtime)
        if reports:
            screenshot(reports[-1].as_uri(), "evidently-report.png", height=1400)
    finally:
        ui.terminate()
        ui.wait(timeout=30)
    print(f"screens in {OUT}")


if __name__ == "__main__":
    main()
