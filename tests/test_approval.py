"""Approval before promotion (`gate.approval: required`) on a real MLflow registry and real Prefect servers.

The candidate is deterministic and cheap: a first run whose fine-tuned model learns nothing (learning rate ~0),
so the TF-IDF baseline wins and, with `gate.baseline_as_champion`, its version is what would be promoted.
Locally (no deployment: nothing can suspend) the version waits, tagged, for `zero2one approve/reject`; on a real
`prefect server start` with a process worker the deployment's flow run suspends with the typed form and is resumed
through the API by `zero2one approve`.
"""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from cli.app import app
from flows.config import load_config
from flows.pipeline import pipeline
from tasks.approval import mark_pending
from tasks.promotion import history
from tasks.registry_names import GATE_VERDICT
from tasks.tracking import Tracking, TrackingConfig
from tasks.workspace import Workspace
from tests.conftest import FAST, ROOT
from tests.test_deployments import Server, _wait, server  # noqa: F401 (the module's real Prefect server fixture)
from tests.test_pipeline import LOSES_TO_TFIDF

pytestmark = [pytest.mark.slow]

WAITS = [*LOSES_TO_TFIDF, "gate.baseline_as_champion=true", "gate.approval=required"]


def _config(ws, *overrides: str):
    return load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={ws}", *FAST, *WAITS, *overrides])


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _tags(config, version: str) -> dict[str, str]:
    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    return tracking.client().get_model_version(config.registry.model_name, version).tags


def _champion(config) -> str | None:
    tracking = Tracking.resolve(config.tracking, config.workspace.resolved())
    champion = tracking.client().get_registered_model(config.registry.model_name).aliases.get("champion")
    return None if champion is None else str(champion)


@pytest.mark.usefixtures("prefect_server")
def test_a_version_waits_and_is_rejected_timed_out_or_approved_from_the_terminal(tmp_path):
    ws = tmp_path / "ws"
    config = _config(ws)
    first = pipeline(config)
    assert first.approval == "pending" and first.promotion is None and first.outcome == "awaiting-approval"
    assert _champion(config) is None and _tags(config, "2")["zero2one.approval"] == "pending"
    assert _tags(config, "2")["zero2one.approval.flow_run_id"] == ""  # not a deployment's run: nothing suspends

    out = _cli("reject", "--version", "2", "--reason", "labels are being fixed", "--by", "ann", "--workspace", str(ws))
    assert out.exit_code == 0, out.output
    tags = _tags(config, "2")
    assert (tags["zero2one.approval"], tags["zero2one.approval.by"]) == ("rejected", "ann")
    assert tags["zero2one.approval.reason"] == "labels are being fixed" and _champion(config) is None
    again = _cli("approve", "--version", "2", "--reason", "x", "--workspace", str(ws))
    assert again.exit_code == 2 and "not waiting for approval (zero2one.approval=rejected" in again.output

    # Asked again by the next run, with a 1-second deadline that passes: rejected as timed out.
    pipeline(_config(ws, "gate.approval_timeout=1"))
    assert _tags(config, "2")["zero2one.approval"] == "pending"
    time.sleep(2)
    late = _cli("approve", "--version", "2", "--reason", "ok", "--workspace", str(ws))
    assert late.exit_code == 2 and "rejected as timed out" in late.output, late.output
    assert _tags(config, "2")["zero2one.approval.reason"].startswith("timed out: no answer by ")
    assert _champion(config) is None

    pipeline(config)
    out = _cli(
        "approve", "--version", "2", "--reason", "baseline is fine for now", "--by", "bo", "--workspace", str(ws)
    )
    assert out.exit_code == 0, out.output
    assert _champion(config) == "2" and _tags(config, "2")["zero2one.approval"] == "approved"
    move = history(config.registry.model_name, Tracking.resolve(config.tracking, config.workspace.resolved()))[-1]
    assert move.version == "2" and not move.forced
    assert move.reason.startswith("approved by bo: baseline is fine for now (baseline promoted as first champion: ")


@pytest.mark.usefixtures("prefect_server")
def test_promote_refuses_a_version_waiting_for_approval_unless_forced_with_a_reason(tmp_path):
    """`zero2one promote` (the promote flow) is no way around approval: it names `zero2one approve`; a forced
    promotion goes through, is recorded as forced, and closes the approval with its reason."""
    ws, uri = tmp_path / "ws", f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = Tracking.resolve(TrackingConfig(uri=uri), Workspace(root=str(ws)).resolved())
    tracking.activate()
    client = tracking.client()
    client.create_registered_model("waits")
    version = str(client.create_model_version("waits", source=str(tmp_path / "model")).version)
    client.set_model_version_tag("waits", version, GATE_VERDICT, "passed")
    mark_pending("waits", version, tracking, None, 3600, "passed the gate")
    where = ["--model", "waits", "--version", version, "--workspace", str(ws), "--tracking-uri", uri]

    refused = _cli("promote", *where)
    assert refused.exit_code == 2, refused.output
    assert f"zero2one approve --model waits --version {version}" in refused.output and "--force" in refused.output
    assert client.get_registered_model("waits").aliases.get("champion") is None

    forced = _cli("promote", *where, "--force", "--reason", "hotfix, the approver is away")
    assert forced.exit_code == 0, forced.output
    assert str(client.get_registered_model("waits").aliases["champion"]) == version
    move = history("waits", tracking)[-1]
    assert move.forced and move.reason == "hotfix, the approver is away"
    tags = client.get_model_version("waits", version).tags
    assert (tags["zero2one.approval"], tags["zero2one.approval.by"]) == ("approved", "forced")
    assert tags["zero2one.approval.reason"] == "promoted with --force: hotfix, the approver is away"


@pytest.mark.usefixtures("prefect_server")
def test_a_suspended_retrain_frees_its_deployment_slot_and_its_resume_queues_for_it():
    """`retrain` runs one at a time (its deployment's concurrency_limit); a run suspended for approval holds no slot,
    so the next schedule runs, and the resumed run waits for the slot (collision strategy ENQUEUE). Prefect's own
    orchestration rules on a real server; the states are set through the API as a worker and the engine set them."""
    import yaml
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.states import Pending, Running, Suspended

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    retrain = next(d for d in spec["deployments"] if d["name"] == "retrain")
    assert retrain["concurrency_limit"] == 1 and "concurrency_options" not in retrain  # ENQUEUE, Prefect's default

    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("retrain"),
            name="slot-test",
            entrypoint=retrain["entrypoint"],
            concurrency_limit=retrain["concurrency_limit"],
        )

        def start(run_id) -> str:  # what a worker proposes before it starts a run: its name says if it may
            return client.set_flow_run_state(run_id, Pending()).state.name

        first, second = (client.create_flow_run_from_deployment(deployment_id) for _ in range(2))
        assert start(first.id) == "Pending"
        client.set_flow_run_state(first.id, Running())
        assert start(second.id) == "AwaitingConcurrencySlot"  # the limit holds while the first one runs

        client.set_flow_run_state(first.id, Suspended(timeout_seconds=3600, pause_key="approve-2"))
        assert client.read_flow_run(first.id).state.name == "Suspended"
        assert start(second.id) == "Pending"  # the next schedule goes ahead while the first waits for a person
        client.set_flow_run_state(second.id, Running())

        resume_flow_run(first.id)
        assert start(first.id) == "AwaitingConcurrencySlot"  # resumed, it queues behind the running one


def _suspended(client, deployment_id, config, worker):
    """Start a run of the deployment; return it once suspended, with its form's description and schema."""
    import json

    run = client.create_flow_run_from_deployment(deployment_id, parameters={"config": config.model_dump(mode="json")})
    paused = _wait(
        "the pipeline run to suspend",
        lambda: (r := client.read_flow_run(run.id)).state.is_paused() and r,
        timeout=900,
        every=3,
        log=worker.log,
    )
    description = client.read_flow_run_input(run.id, "suspended-approve-2-description")
    schema = client.read_flow_run_input(run.id, "suspended-approve-2-schema")
    return paused, description, json.loads(schema) if isinstance(schema, str) else schema


def _answer(command: str, reason: str, by: str, config, ws) -> str:
    args = ["--version", "2", "--reason", reason, "--by", by, "--workspace", str(ws)]
    out = _cli(command, *args, "--tracking-uri", config.tracking.uri)
    assert out.exit_code == 0, out.output
    assert "resumed flow run" in out.output
    return out.output


@pytest.mark.server
@pytest.mark.ops  # 745 s on the loaded machine: `make test-ops`, not `make test`
def test_a_deployment_run_suspends_with_the_form_and_reject_or_approve_resumes_it(server, tmp_path):  # noqa: F811
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    ws = tmp_path / "ws"
    config = _config(ws, f"tracking.uri=sqlite:///{ws / 'mlflow.db'}")
    ws.mkdir(parents=True)
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="approval-test", type="process"))
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("pipeline"),
            name="approval-test",
            work_pool_name="approval-test",
            entrypoint="flows/pipeline.py:pipeline",
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
        )
    worker = server.start_worker("approval-test")
    try:
        with get_client(sync_client=True) as client:
            run, form, schema = _suspended(client, deployment_id, config, worker)
            assert run.state.name == "Suspended" and set(schema["properties"]) == {"approve", "reason", "by"}
            assert schema["properties"]["approve"]["type"] == "boolean"  # the UI renders a typed form
            assert "Promote zero2one-classifier v2" in form and "/models/zero2one-classifier/versions/2" in form
            assert _tags(config, "2")["zero2one.approval.flow_run_id"] == str(run.id) and _champion(config) is None
            _answer("reject", "wait for the relabelled data", "dee", config, ws)
            rejected = client.read_flow_run(run.id)
            assert rejected.state.is_completed() and "rejected" in rejected.state.message, rejected.state
            assert _champion(config) is None and _tags(config, "2")["zero2one.approval"] == "rejected"

            run, _, _ = _suspended(client, deployment_id, config, worker)  # the next run asks again
            _answer("approve", "looked at the card", "cy", config, ws)
            final = client.read_flow_run(run.id)
    finally:
        worker.stop()
    assert final.state.is_completed(), final.state
    assert _champion(config) == "2" and _tags(config, "2")["zero2one.approval.by"] == "cy"
    client = MlflowClient(config.tracking.uri, registry_uri=config.tracking.uri)
    reason = client.get_model_version("zero2one-classifier", "2").tags["zero2one.promotion.reason"]
    assert reason.startswith("promote: approved by cy: looked at the card (baseline promoted as first champion: ")
