"""A real Prometheus (Debian's `prometheus` binary) on 127.0.0.1 for the alert tests, and a recorder of its alerts.

The rules are the shipped ones with every duration divided by `scale` (5m -> 10s at 30): the live test runs in
minutes what production sees in hours, with the same expressions and thresholds. promtool's unit tests
(deployments/monitoring/tests/) check the unscaled durations.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import yaml

from tests.servers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deployments" / "monitoring"
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """'5m' -> 300 (the single-unit durations the rules use)."""
    return int(duration[:-1]) * _UNIT[duration[-1]]


def scaled_rules(text: str, scale: float, least: int = 2) -> str:
    """The rules with every `for:` and range `[...]` duration divided by `scale`, at least `least` seconds."""

    def shrink(duration: str) -> str:
        return f"{max(least, round(seconds(duration) / scale))}s"

    text = re.sub(r"(?<=for: )(\d+[smhd])\b", lambda m: shrink(m.group(1)), text)
    return re.sub(r"\[(\d+[smhd])\]", lambda m: f"[{shrink(m.group(1))}]", text)


def rule_durations(scale: float) -> dict[str, tuple[int, int]]:
    """alertname -> (scaled `for` seconds, longest scaled range window seconds) of the live copy."""
    groups = yaml.safe_load(scaled_rules((MONITORING / "rules" / "zero2one.rules.yml").read_text(), scale))["groups"]
    out = {}
    for rule in (r for g in groups for r in g["rules"]):
        windows = [seconds(w) for w in re.findall(r"\[(\d+[smhd])\]", rule["expr"])]
        out[rule["alert"]] = (seconds(rule.get("for", "0s")), max(windows, default=0))
    return out


class Prometheus:
    """`prometheus` scraping `target` every `scrape` seconds (each scrape may take as long) and evaluating the scaled
    rules every `evaluate` seconds."""

    def __init__(self, root: Path, target: str, scrape: int = 2, evaluate: int = 1, scale: float = 30):
        self.dir, self.port = root / "prometheus", free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        rules = self.dir / "zero2one.rules.yml"
        rules.write_text(scaled_rules((MONITORING / "rules" / "zero2one.rules.yml").read_text(), scale))
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": f"{scrape}s", "evaluation_interval": f"{evaluate}s"}
        config["rule_files"] = [str(rules)]
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "zero2one")
        job["static_configs"] = [{"targets": [target]}]
        config["scrape_configs"] = [job]  # no node exporter here
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("prometheus")
        args = [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}"]
        args += [f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        log = open(self.dir / "prometheus.log", "ab")  # noqa: SIM115 - the server outlives this call
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, "Prometheus", 60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def alerts(self) -> dict[str, str]:
        """alertname -> state ("pending" or "firing") of the active alerts."""
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}

    def query(self, expr: str) -> dict:
        return httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()


class AlertLog:
    """Polls /api/v1/alerts every `every` seconds in a thread: what was active when (monotonic time)."""

    def __init__(self, prometheus: Prometheus, every: float = 0.2):
        self.prometheus, self.every = prometheus, every
        self.history: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                self.history.append((time.monotonic(), self.prometheus.alerts()))
            self._stop.wait(self.every)

    def __enter__(self) -> AlertLog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait(self, name: str, state: str | None, since: float, seconds: float) -> float:
        """The first poll at or after `since` that saw `name` in `state` (None: not active); waits up to `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for t, active in [h for h in self.history if h[0] >= since]:
                if active.get(name) == state:
                    return t
            time.sleep(self.every / 2)
        raise TimeoutError(f"{name} was not {state or 'inactive'} within {seconds:.0f} s: last {self.history[-1:]}")

    def seen(self, since: float, until: float, state: str | None = None) -> set[str]:
        """Names of the alerts in `state` (None: pending or firing) at any poll between `since` and `until`."""
        return {
            name
            for t, active in self.history
            if since <= t <= until
            for name, now in active.items()
            if state in (None, now)
        }
