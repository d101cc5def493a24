"""Screenshots of what users see, for the README: `make screens` (needs Debian's `chromium`).

Runs the pipeline twice in a scratch workspace through the CLI (the second run trains far less, so the gate
refuses it), a monitor run on shifted reviews (drift), then starts `zero2one ui` and photographs the Prefect
runs list, the refused run, the gate and evaluation artifacts, the MLflow runs table, models list and model
version page, and the Evidently report, in headless Chromium; then a pipeline run of a deployment that waits for
approval (gate.approval=required) and its typed Resume form. The PNGs go to docs/screens/.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from core.registry_names import DEFAULT_MODEL_NAME as MODEL

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screens"
# Minutes of CPU training, not the presets' full runs: the screens show what the UIs say. The first run fine-tunes the
# packaged pretrained checkpoint (all-MiniLM-L6-v2) and should become champion; the second trains the tiny
# from-scratch model for a few steps, so the gate must refuse it (it registers the TF-IDF baseline where that wins).
SMALL = ["data.max_rows=900", "optimize.latency.iterations=2"]
FIRST = ("configs/finetune-pretrained.yaml", [*SMALL, "finetune.epochs=2"])
WORSE = ("configs/tiny.yaml", [*SMALL, "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"])
# A first run whose fine-tuned model learns nothing: the TF-IDF baseline wins and waits for approval as first champion.
WAITS = ["data.max_rows=300", "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"]
WAITS += ["finetune.optim.learning_rate=1e-9", "optimize.enabled=false", "gate.baseline_as_champion=true"]
WAITS += ["gate.approval=required", "registry.model_name=zero2one-approval"]  # its own model: no champion yet
# The Prefect UI's Resume button of a suspended run opens the form its run input schema describes.
OPEN_RESUME_FORM = """
for (const b of document.querySelectorAll('button')) { if (b.textContent.trim() === 'Resume') { b.click(); break; } }
"""


def zero2one(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "zero2one"), *args]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed with exit code {proc.returncode}")
    return proc


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free (links in artifacts name the default UI ports), else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit("no free port")


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


# MLflow 3 opens a "new Model Registry UI" promotion and its Assistant panel over every page: close both first.
CLOSE_OVERLAYS = """
document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
for (const b of document.querySelectorAll('button[aria-label]')) {
  if (/close/i.test(b.getAttribute('aria-label'))) b.click();
}
"""


def screenshot(url: str, name: str, height: int = 1000, wait_s: float = 20, js: str | None = None) -> None:
    """One PNG of `url` in headless Chromium, driven over the DevTools protocol.

    `--screenshot` alone photographs single-page apps before they have fetched anything and cannot close MLflow's
    overlays; here the page gets `wait_s` real seconds, then `js`, then the picture.
    """
    from websockets.sync.client import connect

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install chromium")
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]
            + ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
            + [f"--user-data-dir={profile}", f"--remote-debugging-port={port}", f"--window-size=1440,{height}"]
            + ["about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/json/version", 60)
            page = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json").json() if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                cdp = _Cdp(ws)
                cdp("Emulation.setDeviceMetricsOverride", width=1440, height=height, deviceScaleFactor=1, mobile=False)
                cdp("Page.navigate", url=url)
                time.sleep(wait_s)
                if js:
                    cdp("Runtime.evaluate", expression=js)
                    time.sleep(2)
                png = cdp("Page.captureScreenshot", format="png")["data"]
            (OUT / name).write_bytes(base64.b64decode(png))
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    size = shrink(OUT / name)
    print(f"  {name}: {url} ({size // 1024} KB)")


class _Cdp:
    """Calls over one DevTools websocket: send a method, skip events until its answer."""

    def __init__(self, ws):
        self.ws, self.n = ws, 0

    def __call__(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == self.n:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


def shrink(path: Path, limit: int = 300_000) -> int:
    """Keep screenshots small for the repository: a 256-colour palette when the full-colour PNG is over `limit`."""
    from PIL import Image

    if path.stat().st_size > limit:
        with Image.open(path) as img:
            img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


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


def suspended_run(api: str, ws: Path) -> str:
    """A pipeline run of a deployment, executed as a process worker would (`python -m prefect.engine`), that
    suspends for approval; its id."""
    from flows.config import load_config

    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", *WAITS])
    flow_id = httpx.post(f"{api}/flows/", json={"name": "pipeline"}).raise_for_status().json()["id"]
    deployment = {"name": "approval-screens", "flow_id": flow_id, "entrypoint": "flows/pipeline.py:pipeline"}
    deployment_id = httpx.post(f"{api}/deployments/", json=deployment).raise_for_status().json()["id"]
    run = httpx.post(
        f"{api}/deployments/{deployment_id}/create_flow_run",
        json={"parameters": {"config": config.model_dump(mode="json")}},
    ).raise_for_status()
    run_id = run.json()["id"]
    print(f"$ python -m prefect.engine {run_id}  (waits for approval)", flush=True)
    env = {**os.environ, "PREFECT_API_URL": api}
    subprocess.run([sys.executable, "-m", "prefect.engine", run_id], cwd=ROOT, env=env, check=True)
    state = httpx.get(f"{api}/flow_runs/{run_id}").raise_for_status().json()["state"]
    if state["name"] != "Suspended":
        raise SystemExit(f"the approval run ended {state['name']}: {state.get('message')}")
    return run_id


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def ensure_champion(ws: Path) -> None:
    """Where the gate refused the first run too, promote it by hand (forced, with a reason), as a user would."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{ws / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    if "champion" in client.get_registered_model(MODEL).aliases:
        return
    reason = "the screenshots need a fine-tuned champion to monitor"
    zero2one("promote", "--model", MODEL, "--version", "1", "--force", "--reason", reason, "--workspace", str(ws))


def versions(ws: Path) -> tuple[str, str]:
    """The newest fine-tuned version the gate refused, and the champion."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{ws / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    refused = [
        int(mv.version)
        for mv in client.search_model_versions(f"name='{MODEL}'")
        if mv.tags.get("zero2one.kind") == "finetuned" and mv.tags.get("zero2one.gate.verdict") == "failed"
    ]
    return str(max(refused)), str(client.get_registered_model(MODEL).aliases["champion"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="Reuse a workspace (default: a new scratch folder).")
    parser.add_argument("--skip-runs", action="store_true", help="Only photograph an existing --workspace.")
    parser.add_argument("--approval-only", action="store_true", help="Only the run waiting for approval and its form.")
    args = parser.parse_args()
    ws = args.workspace or Path(tempfile.mkdtemp(prefix="zero2one-screens-")) / "ws"
    OUT.mkdir(parents=True, exist_ok=True)
    where = ["--set", f"workspace.root={ws}"]
    if not (args.skip_runs or args.approval_only):
        zero2one("run", "--config", FIRST[0], *where, *sets(FIRST[1]), check=False)
        ensure_champion(ws)
        zero2one("run", "--config", WORSE[0], *where, *sets(WORSE[1]), check=False)
        zero2one("demo-data", str(ws / "demo-copy"))
        window = ws / "demo-copy" / "reviews_shifted.csv"
        columns = ["--text-column", "review", "--label-column", "sentiment"]
        zero2one("monitor", "--window", str(window), *columns, *where, check=False)

    prefect_port, mlflow_port = free_port(4200), free_port(5000)
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
        waiting = suspended_run(f"{prefect}/api", ws)
        screenshot(f"{prefect}/runs/flow-run/{waiting}", "prefect-approval.png", height=1100, js=OPEN_RESUME_FORM)
        if args.approval_only:
            return
        ids = prefect_ids(f"{prefect}/api")
        screenshot(f"{prefect}/runs", "prefect-runs.png")
        screenshot(f"{prefect}/runs/flow-run/{ids['refused_run']}", "prefect-refused-run.png", height=1400)
        for key in ("gate", "evaluate-summary"):
            if key in ids:
                screenshot(f"{prefect}/artifacts/artifact/{ids[key]}", f"prefect-{key}.png", height=1200)
        screenshot(f"{mlflow_ui}/#/experiments/1/runs", "mlflow-runs.png", js=CLOSE_OVERLAYS)
        screenshot(f"{mlflow_ui}/#/models", "mlflow-models.png", js=CLOSE_OVERLAYS)
        refused, champion = versions(ws)
        version = f"{mlflow_ui}/#/models/{MODEL}/versions/"
        screenshot(f"{version}{refused}", "mlflow-model-version.png", 1400, js=CLOSE_OVERLAYS)
        screenshot(f"{version}{champion}", "mlflow-champion-version.png", 1400, js=CLOSE_OVERLAYS)
        reports = sorted(ws.rglob("inputs.html"), key=lambda p: p.stat().st_mtime)  # the input drift report
        if reports:
            screenshot(reports[-1].as_uri(), "evidently-report.png", height=1400, wait_s=10)
    finally:
        ui.terminate()
        ui.wait(timeout=30)
    print(f"screens in {OUT}")


if __name__ == "__main__":
    main()
