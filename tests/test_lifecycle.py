"""A workspace's life across processes: runs that start together, runs that are killed, runs that resume.

Each test starts real processes (the way two `zero2one run` or a `kill -9` happen) on a fresh workspace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent

# Each process imports everything first, says it is ready, then waits for "go": the first connects really overlap.
_INIT_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace

    root, me = Path(sys.argv[1]), sys.argv[2]
    tracking = Tracking.resolve(TrackingConfig(), Workspace(root=str(root)).resolved())
    (root / f"ready-{me}").touch()
    while not (root / "go").exists():
        time.sleep(0.001)
    tracking.activate()
    tracking.client().search_registered_models()
    """
)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_processes_creating_a_new_tracking_store_together_all_succeed(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _INIT_STORE, str(ws), str(i)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]
    try:
        _wait_for(lambda: all((ws / f"ready-{i}").exists() for i in range(n)), 300, "the processes to import MLflow")
        (ws / "go").touch()
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    failed = [out[-1500:] for p, out in zip(procs, outputs, strict=True) if p.returncode != 0]
    assert not failed, f"{len(failed)} of {n} processes failed:\n" + "\n---\n".join(failed)

    from mlflow import MlflowClient

    assert len(MlflowClient(f"sqlite:///{ws / 'mlflow.db'}").search_experiments(filter_string="name='zero2one'")) == 1


def _running_stages(tracking) -> dict[str, object]:
    runs = tracking.client().search_runs(
        [tracking.activate()], filter_string="attributes.status = 'RUNNING'", max_results=100
    )
    return {run.data.tags.get("zero2one.stage"): run for run in runs}


@pytest.mark.slow
def test_the_next_run_marks_the_runs_of_a_killed_process(prefect_server, workspace):
    """`kill -9` during pretraining, then the next pipeline run's first step: the dead process's runs are closed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL

    from core.orphans import ORPHANED
    from core.tracking import Tracking, close_pipeline_run, open_pipeline_run
    from flows.config import load_config

    sets = [f"workspace.root={workspace}", *FAST, "pretrain.max_steps=100000", "pretrain.save_steps=100000"]
    cfg = load_config(ROOT / "configs" / "tiny.yaml", sets)
    tracking = Tracking.resolve(cfg.tracking, cfg.workspace.resolved())
    args = [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--config", "configs/tiny.yaml", *args],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},  # the test's server, not an embedded one
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: (workspace / "mlflow.db").exists(), 300, "the run to create its MLflow database")
        _wait_for(lambda: "pretrain" in _running_stages(tracking), 300, "pretraining to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    killed = _running_stages(tracking)
    assert {"pipeline", "pretrain"} <= set(killed)  # what a killed run leaves behind: RUNNING forever

    new_run = open_pipeline_run(tracking, "pipeline", {}, {})  # what the next run does first
    close_pipeline_run(tracking, new_run, ok=True)

    client = tracking.client()
    for stage in ("pipeline", "pretrain"):
        run = client.get_run(killed[stage].info.run_id)
        assert run.info.status == "KILLED"
        assert f"process {proc.pid} on " in run.data.tags[ORPHANED]
    assert client.get_run(new_run).info.status == "FINISHED"  # a live run is left alone
    flow_run_id = killed["pipeline"].data.tags["prefect.flow_run_id"]
    with get_client(sync_client=True) as prefect:
        assert prefect.read_flow_run(flow_run_id).state_type == StateType.CRASHED
        only_it = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        tasks = {t.name.rsplit("-", 1)[0]: t.state_type for t in prefect.read_task_runs(flow_run_filter=only_it)}
    assert tasks.get("pretrain") == StateType.CRASHED, tasks
    assert StateType.RUNNING not in tasks.values()


def test_resumed_pretraining_starts_from_the_checkpoint_state(workspace, faults):
    """After a failure at the step-3 checkpoint, the resumed model is that checkpoint: weights, bias, ties."""
    import logging

    import mlflow
    import torch
    from transformers import AutoModelForMaskedLM, TrainerCallback

    from core.orchestration import InjectedFault
    from core.tracking import Tracking
    from flows.config import load_config
    from tasks.data.prepare import prepare_data
    from tasks.training.common import last_checkpoint
    from tasks.training.pretrain import PretrainJob, build_trainer, train_encoder
    from tasks.training.tokenizer import train_tokenizer

    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            f"workspace.root={workspace}",
            "data.max_rows=300",
            "tokenizer.vocab_size=500",
            "pretrain.max_steps=4",
            "pretrain.save_steps=3",
            "pretrain.optim.batch_size=16",
            "pretrain.optim.warmup_steps=1",
        ],
    )
    ws = cfg.workspace.resolved()
    Tracking.resolve(cfg.tracking, ws).activate()  # where the Trainer's MLflow callback logs
    data = prepare_data(cfg.data, ws)
    workdir = ws.local_dir("pretrain", "resume-test")
    job = PretrainJob(
        cfg=cfg.pretrain,
        data=data,
        tokenizer=train_tokenizer(cfg.tokenizer, data, ws),
        workdir=str(workdir),
        resume=None,
        resume_step=0,
        faults_dir=str(ws.local_dir("faults")),
    )
    faults("pretrain@step=3")
    with pytest.raises(InjectedFault):
        train_encoder(job)
    checkpoint, step = last_checkpoint(workdir)
    assert step == 3

    class AtResume(TrainerCallback):  # the model as training continues: after the checkpoint was loaded
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            head, emb = model.cls.predictions, model.bert.embeddings.word_embeddings
            self.tied = head.decoder.weight is emb.weight and head.decoder.bias is head.bias

    at_resume, warnings = AtResume(), []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("transformers.trainer").addHandler(handler)
    try:
        trainer = build_trainer(job.model_copy(update={"resume": checkpoint, "resume_step": step}))
        trainer.add_callback(at_resume)
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        logging.getLogger("transformers.trainer").removeHandler(handler)
        mlflow.end_run()  # the Trainer's callback run, left open by the injected failure

    saved = AutoModelForMaskedLM.from_pretrained(checkpoint).state_dict()
    assert set(at_resume.state) == set(saved)
    different = [k for k, v in saved.items() if not torch.equal(at_resume.state[k], v)]
    assert not different, f"differ from the checkpoint after resume: {different}"
    assert at_resume.tied
    assert not [w for w in warnings if "missing keys" in w], warnings  # no false "newly initialized" alarm


@pytest.mark.slow
def test_two_first_runs_started_together_both_finish(tmp_path):
    """Two `zero2one run` at once on a new workspace (a scheduled retrain meeting a manual run)."""
    from mlflow import MlflowClient

    ws = tmp_path / "ws"
    sets = [
        f"workspace.root={ws}",
        *FAST,
        "data.max_rows=300",
        "tokenizer.vocab_size=500",
        "pretrain.max_steps=10",
        "pretrain.save_steps=10",
        "pretrain.optim.warmup_steps=1",
        "finetune.epochs=1",
        "optimize.enabled=false",
        "gate.register_baseline=false",  # two runs, two versions
    ]
    args = [arg for s in sets for arg in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # each run starts its embedded server
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--config", "configs/tiny.yaml", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=1500)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode in (0, 3), out[-4000:]  # finished (the gate may refuse a model this small)
        assert "Registered models:/zero2one-classifier/" in out

    uri = f"sqlite:///{ws / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)  # not the registry an earlier in-process test made global
    versions = client.search_model_versions("name='zero2one-classifier'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert sum("champion" in v.aliases for v in versions) <= 1
    experiment = client.get_experiment_by_name("zero2one").experiment_id
    assert not client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
