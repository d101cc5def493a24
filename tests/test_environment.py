"""The embedded Prefect server's first start on a new workspace (database creation + every migration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

START = """
import json, os, sys, time
from cli.environment import configure_environment, start_embedded_prefect
configure_environment(sys.argv[1])
began = time.monotonic()
start_embedded_prefect()
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as timeout
print(json.dumps({"seconds": time.monotonic() - began, "timeout": timeout.value()}))
"""


def test_first_start_on_a_new_workspace_fits_the_startup_timeout_with_room(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, "-c", START, str(tmp_path / "ws")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"first start of the embedded Prefect server: {measured['seconds']:.1f} s (timeout {measured['timeout']} s)")
    assert (tmp_path / "ws" / "prefect").is_dir()  # the server's database lives in the workspace
    # Prefect's own default (20 s) was met by 1 s on an idle machine; keep at least half the budget unused.
    assert measured["timeout"] >= 2 * measured["seconds"]
