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
from core.registry_names import GATE_VERDICT
from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from flows.config import load_config
from flows.pipeline import pipeline
from tasks.registry.approval import mark_pending
from tasks.registry.promotion import history
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


def _engine(flow_run_id, flow=pipeline):
    """Execute a deployment's flow run in this process, as a process worker's `python -m prefect.engine` does;
    True when the run suspended."""
    from prefect import get_client
    from prefect.exceptions import Pause
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    try:
        run_flow(flow, flow_run=run)
    except Pause:
        return True
    return False


@pytest.mark.usefixtures("prefect_server")
def test_a_resumed_pipeline_run_reuses_its_data_verdict_version_and_mlflow_run(tmp_path):
    """On resume Prefect runs the flow again from its start. The run must answer for what the person saw: the data
    it read (the file changed while it waited), the version it registered and its one parent MLflow run."""
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    from tasks.data.demo import write_demo_data

    demo, ws = write_demo_data(tmp_path / "data", n_labeled=600, n_corpus=600, n_shifted=10), tmp_path / "ws"
    config = _config(ws, f"data.source={demo.reviews}", f"data.corpus={demo.corpus}")
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("pipeline"),
            name="resume-test",
            entrypoint="flows/pipeline.py:pipeline",
        )
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"config": config.model_dump(mode="json")}
        )
        assert _engine(run.id) and client.read_flow_run(run.id).state.name == "Suspended"
        assert _tags(config, "2")["zero2one.approval.flow_run_id"] == str(run.id)
        lines = demo.reviews.read_text().splitlines()
        demo.reviews.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # new rows come in meanwhile
        resume_flow_run(run.id, run_input={"approve": True, "reason": "read the card", "by": "eve"})
        assert not _engine(run.id), "the resumed run suspended again: it asked about another version"
        final = client.read_flow_run(run.id)
    assert final.state.is_completed(), final.state
    assert _champion(config) == "2" and _tags(config, "2")["zero2one.approval.by"] == "eve"
    client = Tracking.resolve(config.tracking, config.workspace.resolved()).client()
    assert sorted(str(v.version) for v in client.search_model_versions("name='zero2one-classifier'")) == ["1", "2"]
    parents = client.search_runs(
        [client.get_experiment_by_name(config.tracking.experiment).experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{run.id}' and tags.`zero2one.stage` = 'pipeline'",
    )
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [r.info.run_name for r in parents]


def _pipeline_runs(config) -> list:
    client = Tracking.resolve(config.tracking, config.workspace.resolved()).client()
    experiment = client.get_experiment_by_name(config.tracking.experiment).experiment_id
    return client.search_runs([experiment], filter_string="tags.`zero2one.stage` = 'pipeline'")


@pytest.mark.ops  # 840 s on the loaded machine (two pipelines): `make test-ops`
@pytest.mark.usefixtures("prefect_server")
def test_a_retrain_run_suspends_itself_and_resumed_reuses_its_pipeline_and_version(tmp_path):
    """The pipeline inside a retrain cannot suspend (a subflow); the retrain's own run does, and once resumed it
    takes the finished pipeline's result back (no second pipeline run, MLflow run or version) and promotes."""
    import pandas as pd
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.flow_runs import resume_flow_run

    from flows.retrain import retrain

    ws = tmp_path / "ws"
    trains = [f"workspace.root={ws}", *FAST, "optimize.enabled=false"]  # beats the majority class (a gate rule)
    first = pipeline(load_config(ROOT / "configs" / "tiny.yaml", trains))
    name, tracking = first.registered.name, Tracking.resolve(_config(ws).tracking, _config(ws).workspace.resolved())
    tracking.client().set_registered_model_alias(name, "champion", first.registered.version)  # a champion to retrain
    window = tmp_path / "labeled.csv"
    shifted = pd.read_csv(ws / "demo" / "reviews_shifted.csv").head(40)
    shifted.rename(columns={"review": "text", "sentiment": "true_label"}).to_csv(window, index=False)
    lenient = ["gate.compare=not_worse", "gate.margin=1", "gate.newest_margin=1", "gate.baseline_rule=false"]
    lenient += ["gate.baseline_rule_off_reason=a tiny test model", "gate.approval=required", "finetune.epochs=3"]
    given = load_config(ROOT / "configs" / "tiny.yaml", [*trains, *lenient])
    parameters = {"model_name": name, "new_data": {"uri": str(window)}, "settings": "given"}
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("retrain"), name="retrain-test", entrypoint="flows/retrain.py:retrain"
        )
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters=parameters | {"pipeline_config": given.model_dump(mode="json")}
        )
        assert _engine(run.id, retrain) and client.read_flow_run(run.id).state.name == "Suspended"
        waiting = tracking.client().search_model_versions(f"name='{name}' and tags.`zero2one.approval` = 'pending'")
        assert len(waiting) == 1 and waiting[0].tags["zero2one.approval.flow_run_id"] == str(run.id)
        version, mlflow_runs = str(waiting[0].version), len(_pipeline_runs(given))
        versions = len(tracking.client().search_model_versions(f"name='{name}'"))
        assert _champion(given) == first.registered.version

        resume_flow_run(run.id, run_input={"approve": True, "reason": "retrained on the window", "by": "flo"})
        assert not _engine(run.id, retrain)
        final = client.read_flow_run(run.id)
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [run.id]}))
    assert final.state.is_completed(), final.state
    assert len(children) == 1, [c.name for c in children]  # the pipeline ran once
    assert _champion(given) == version and _tags(given, version)["zero2one.approval.by"] == "flo"
    assert len(_pipeline_runs(given)) == mlflow_runs == 2  # the first pipeline's and the retrain's
    assert len(tracking.client().search_model_versions(f"name='{name}'")) == versions


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
