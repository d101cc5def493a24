"""What a run shows a person: the stage logs in Prefect hold sentences, not library internals."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent


def test_prepare_data_logs_no_bytecode(prefect_server, workspace):
    """`datasets` hashes functions with dill, which disassembles them into a captured stdout; Prefect's
    `log_prints` used to send that disassembly (45 lines of LOAD_GLOBAL ... RETURN_VALUE) to the run log."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from core.orchestration import stage_task
    from flows.config import load_config
    from tasks.data.prepare import prepare_data

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={workspace}", *FAST])

    @flow(log_prints=True)  # as the pipeline flow
    def prepare() -> str:
        from prefect.runtime import flow_run

        stage_task(prepare_data, "prepare_data", cfg.data.retry, cache=False)(cfg.data, cfg.workspace.resolved())
        return flow_run.id

    flow_run_id = prepare()
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:  # logs reach the server in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = [log.message for log in logs]
            if any("Finished in state" in m for m in messages) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert any("prepared" in m for m in messages), messages  # the stage's own sentence is there
    bytecode = [m for m in messages if "LOAD_GLOBAL" in m or "RETURN_VALUE" in m or "LOAD_FAST" in m]
    assert not bytecode, f"{len(bytecode)} log lines of bytecode, e.g. {bytecode[:3]}"
