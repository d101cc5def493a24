"""The alert rules of deployments/monitoring/: promtool's checks and unit tests, the metrics they name exist, and
(marked `alerts`, `make test-alerts`) a real Prometheus scraping a real `zero2one serve` sees injected faults fire
their alerts and resolve after, and nothing fire in a clean minute of traffic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tests.prometheus import MONITORING, AlertLog, Prometheus, rule_durations
from tests.servers import SeaweedS3, free_port, wait_until

RULES = MONITORING / "rules" / "zero2one.rules.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is missing: apt-get install prometheus (CI installs it)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)


def _alert_names() -> set[str]:
    return {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}


def _dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


@needs_promtool
def test_config_and_rules_pass_promtool_checks_and_unit_tests():
    for args in (("check", "config", "prometheus.yml"), ("test", "rules", "tests/zero2one.test.yml")):
        done = _promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_has_a_firing_case_in_the_promtool_tests():
    tested = set()
    for path in (MONITORING / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {a["alertname"] for a in case["alert_rule_test"] if a.get("exp_alerts")}
    assert _alert_names() - tested == set()


def test_rules_and_dashboard_name_only_metrics_that_exist():
    """A renamed metric silently disables the alert on it: every zero2one_* name must be exposed somewhere."""
    from prometheus_client.parser import text_string_to_metric_families

    from serving.metrics import ServiceMetrics
    from tasks.monitoring.textfile import metrics_text

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = {m.name + s for m in ServiceMetrics().registry.collect() for s in [""] + suffixes.get(m.type, [])}
    names |= {s.name for f in text_string_to_metric_families(metrics_text("m", "1", "drift", 0.0)) for s in f.samples}
    used = set(re.findall(r"zero2one_[a-z0-9_]+", RULES.read_text() + "\n".join(_dashboard_queries())))
    assert used - names == set()


def test_the_monitor_textfile_is_replaced_by_each_run(tmp_path):
    """A run without drift ends the drift alert: the file holds only the last verdict."""
    from prometheus_client.parser import text_string_to_metric_families

    from tasks.monitoring.textfile import write_textfile

    write_textfile(str(tmp_path), "reviews", "3", "drift")
    path = write_textfile(str(tmp_path), "reviews", "4", "no_drift")
    samples = {s.name: s for f in text_string_to_metric_families(path.read_text()) for s in f.samples}
    drift = samples["zero2one_monitor_drift_detected"]
    assert (drift.labels, drift.value) == ({"model": "reviews", "version": "4", "status": "no_drift"}, 0.0)
    assert abs(samples["zero2one_monitor_last_run_timestamp_seconds"].value - time.time()) < 60
    assert [p.name for p in tmp_path.iterdir()] == ["zero2one_monitor_reviews.prom"]  # no temporary file left


# ---------------------------------------------------------------------------------------------- live


class Traffic:
    """Good requests (~5 a second) in a thread; `bad` adds three refused ones (422) per good one."""

    def __init__(self, url: str):
        self.url, self.bad, self.codes = url, False, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                self.codes.append(client.post("/predict", json={"texts": [f"review {i}: the screen is great"]}))
                for _ in range(3 if self.bad else 0):
                    self.codes.append(client.post("/predict", json={"texts": "not a list"}))
                self._stop.wait(0.2)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _serve(ws, port: int, s3: SeaweedS3) -> subprocess.Popen:
    args = [sys.executable, "-m", "cli", "serve", "--workspace", str(ws), "--port", str(port), "--alias", "live"]
    args += ["--poll-seconds", "1", "--log-flush-seconds", "0.5", "--no-follow-events"]
    args += ["--prediction-log", f"s3://{s3.bucket}/predictions"]
    # One attempt per flush: the journal is the retry. botocore's default retries kept a failing flush 20-28 s.
    env = {**os.environ, **s3.env, "AWS_MAX_ATTEMPTS": "1"}
    log = open(ws.parent / "serve.log", "ab")  # noqa: SIM115 - the service outlives this call
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class Fault:
    """Times one injected fault of `alert`: when it started, went pending, fired, the fault ended, it resolved."""

    def __init__(self, log: AlertLog, alert: str, durations: dict[str, tuple[int, int]], interval: int):
        self.log, self.alert, self.interval = log, alert, interval
        self.for_s, self.window_s = durations[alert]
        self.start = time.monotonic()

    def fires(self, seconds: float) -> None:
        if self.for_s == 0:  # no `for`: firing at the first evaluation that sees it, never pending
            self.pending = self.firing = self.log.wait(self.alert, "firing", self.start, seconds)
            return
        self.pending = self.log.wait(self.alert, "pending", self.start, seconds)
        self.firing = self.log.wait(self.alert, "firing", self.pending, seconds)
        # Pending for `for`, then firing at one of the next two evaluations (0.5 s: the recorder's polling).
        assert self.firing - self.pending <= self.for_s + 2 * self.interval + 0.5, self.report()

    def resolves(self, seconds: float, ended: float | None = None) -> None:
        """Waits for the alert to end; `ended`: when the fault ended (default: now)."""
        self.ended = ended or time.monotonic()
        self.resolved = self.log.wait(self.alert, None, self.ended, seconds)

    def report(self) -> str:
        t = {
            k: round(getattr(self, k) - self.start, 1)
            for k in ("pending", "firing", "ended", "resolved")
            if hasattr(self, k)
        }
        return f"{self.alert} (for {self.for_s}s, window {self.window_s}s): {t}"


@pytest.mark.alerts
def test_faults_fire_their_alerts_on_a_live_prometheus(prefect_server, make_config, workspace, tmp_path):
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from flows.pipeline import pipeline

    began = time.monotonic()
    small = ["data.max_rows=300", "pretrain.max_steps=10", "pretrain.save_steps=10", "finetune.epochs=1"]
    reg = pipeline(make_config(*small, "optimize.enabled=false")).registered  # any servable version will do
    print(f"\npipeline: {time.monotonic() - began:.0f} s")
    client = Tracking.resolve(TrackingConfig(), Workspace(root=str(workspace))).client()
    s3 = SeaweedS3(tmp_path)
    s3.start()
    port, interval, scale = free_port(), 1, 30
    url, durations = f"http://127.0.0.1:{port}", rule_durations(scale)
    service, prometheus, reports = (
        _serve(workspace, port, s3),
        Prometheus(tmp_path, f"127.0.0.1:{port}", 2, interval, scale),
        [],
    )
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, "zero2one serve", 120)
        prometheus.start()
        with AlertLog(prometheus) as log:
            # 1. The alias `live` points nowhere: no model loaded. Setting it loads the version and resolves.
            fault = Fault(log, "Zero2oneNoModelLoaded", durations, interval)
            fault.fires(60)
            client.set_registered_model_alias(reg.name, "live", reg.version)
            fault.resolves(60)
            reports.append(fault.report())

            with Traffic(url) as traffic:
                # 2. A clean minute of traffic: nothing fires. (A scrape slower than its 2 s timeout on a loaded
                # machine can make Zero2oneServiceDown pending for a moment; its `for` is there for that.)
                clean = time.monotonic()
                time.sleep(60)
                assert log.seen(clean, time.monotonic(), "firing") == set(), log.history[-1]
                reports.append(f"clean minute: pending {sorted(log.seen(clean, time.monotonic()))}, firing none")

                # 3. A burst of bad requests (422) until the alert fires.
                traffic.bad = True
                fault = Fault(log, "Zero2oneRequestsRefused", durations, interval)
                fault.fires(60)
                traffic.bad = False
                fault.resolves(fault.window_s + 2 * interval + 2 * 2 + 5)  # + two 2 s scrapes
                reports.append(fault.report())
                assert log.seen(fault.start, time.monotonic()) == {"Zero2oneRequestsRefused"}

                # 4. The prediction log's object store is unreachable while traffic goes on.
                faults = [
                    Fault(log, a, durations, interval)
                    for a in ("Zero2oneLogFlushFailing", "Zero2onePredictionLogBehind")
                ]
                s3.stop()
                for fault in faults:
                    fault.fires(60)
                s3.start()
                back = time.monotonic()
                for fault in faults:
                    fault.resolves(90, ended=back)
                    reports.append(fault.report())
                assert log.seen(faults[0].start, time.monotonic()) == {f.alert for f in faults}
            assert {c.status_code for c in traffic.codes} == {200, 422}
            _dashboard_queries_run(prometheus, interval)
    finally:
        print("\n".join(reports), f"\nwhole test: {time.monotonic() - began:.0f} s")
        prometheus.stop()
        service.terminate()
        service.wait(timeout=60)
        s3.stop()


def _dashboard_queries_run(prometheus: Prometheus, interval: int) -> None:
    """Every panel's query parses and runs; those on the classifier's traffic return series."""
    empty = []
    for expr in _dashboard_queries():
        live = expr.replace("$__rate_interval", f"{10 * interval}s").replace("$instance", ".*")
        body = prometheus.query(live)
        assert body["status"] == "success", (expr, body)
        if not body["data"]["result"]:
            empty.append(expr)
    # Nothing generated (a classifier served), no monitor textfile scraped, no 5xx and no alert firing now.
    expected_empty = ("generat", "first_token", "inter_token", "monitor_drift", "ALERTS", '"5.."')
    assert [e for e in empty if not any(k in e for k in expected_empty)] == []


# ---------------------------------------------------------------------------------------------- Prefect automations


def test_the_alert_automations_validate_and_a_broken_one_is_named(tmp_path):
    from cli.automations import AutomationsError, automation_specs

    specs = {s.name: s for s in automation_specs()}
    assert set(specs) == {
        "zero2one-pipeline-refused-3-times",
        "zero2one-monitor-run-failed",
        "zero2one-run-suspended-over-a-day",
    }
    assert {a.type for s in specs.values() for a in s.actions} == {"do-nothing"}  # no --notify block given
    broken = tmp_path / "automations.yaml"
    broken.write_text("automations:\n  - name: typo\n    trigger: {type: event, posture: Sometimes}\n    actions: []\n")
    with pytest.raises(AutomationsError, match=r"(?s)automations.yaml: typo: .*posture.*Sometimes"):
        automation_specs(broken)


def _automation_triggered(automation_id) -> list:
    from prefect.settings import PREFECT_API_URL

    body = {
        "filter": {
            "event": {"name": ["prefect.automation.triggered"]},
            "any_resource": {"id": [f"prefect.automation.{automation_id}"]},
        },
        "limit": 50,
    }
    return httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=body, timeout=10).json()["events"]


@pytest.mark.server
def test_deploy_applies_the_alerts_once_and_a_failed_monitor_run_triggers_its_alert(prefect_server, make_config):
    """Applied twice: created, then unchanged. A real monitor run failing (no such model) triggers the automation."""
    from prefect import get_client

    from cli.automations import ensure_automations
    from core.errors import PipelineInputError
    from flows.monitor import monitor

    assert set(ensure_automations().values()) == {"created"}
    assert set(ensure_automations().values()) == {"unchanged"}
    with get_client(sync_client=True) as client:
        failed_alert = client.read_automations_by_name("zero2one-monitor-run-failed")[0]
        refused_alert = client.read_automations_by_name("zero2one-pipeline-refused-3-times")[0]
    with pytest.raises(PipelineInputError):
        monitor(model_name="no-such-model", pipeline_config=make_config())
    wait_until(lambda: _automation_triggered(failed_alert.id), "the monitor-failed automation", 60)
    assert _automation_triggered(refused_alert.id) == []
