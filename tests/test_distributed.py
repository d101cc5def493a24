"""`nproc_per_node: 2` on CPU: torchrun with gloo from inside the stage, the same result as one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from core.errors import PipelineInputError
from core.tracking import Tracking
from flows.config import load_config
from tasks.data.prepare import prepare_data
from tasks.kinds.classification.finetune import FinetuneJob, finetune, train_classifier
from tasks.training import distributed
from tasks.training.pretrain import pretrain
from tasks.training.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
# Just enough to run both Trainer loops: a handful of steps each.
TINY = [
    "data.max_rows=300",
    "tokenizer.vocab_size=500",
    "pretrain.max_steps=3",
    "pretrain.save_steps=3",
    "pretrain.optim.batch_size=16",
    "pretrain.optim.warmup_steps=1",
    "finetune.epochs=1",
    "finetune.optim.batch_size=64",
    "finetune.optim.warmup_steps=1",
]


def _model_config(uri: str) -> dict:
    cfg = json.loads(Path(uri, "config.json").read_text())
    return {k: v for k, v in cfg.items() if k not in {"_name_or_path", "transformers_version"}}


@pytest.mark.slow
def test_two_processes_train_the_same_model_shape_in_the_same_steps(workspace):
    def config(nproc: int):
        return load_config(
            ROOT / "configs" / "tiny.yaml",
            [
                f"workspace.root={workspace}",
                *TINY,
                f"pretrain.nproc_per_node={nproc}",
                f"finetune.nproc_per_node={nproc}",
            ],
        )

    single, double = config(1), config(2)
    ws = single.workspace.resolved()
    tracking = Tracking.resolve(single.tracking, ws)
    data = prepare_data(single.data, ws)
    tokenizer = train_tokenizer(single.tokenizer, data, ws)

    results = {}
    for name, cfg in {"single": single, "double": double}.items():
        encoder = pretrain(cfg.pretrain, data, tokenizer, tracking, ws)
        results[name] = (encoder, finetune(cfg.finetune, data, tokenizer, encoder, tracking, ws))
    (enc1, clf1), (enc2, clf2) = results["single"], results["double"]

    assert enc2.global_step == enc1.global_step == 3
    assert enc2.parameters == enc1.parameters
    assert _model_config(enc2.uri) == _model_config(enc1.uri)
    assert clf2.global_step == clf1.global_step > 0
    assert clf2.labels == clf1.labels
    assert _model_config(clf2.uri) == _model_config(clf1.uri)
    assert enc2.uri != enc1.uri  # a separate run, not the single-process checkpoint reused

    # Rank 0 logged into the stage's MLflow run, which the parent process opened; both processes trained together.
    client = MlflowClient(tracking.uri)
    for run_id in (enc2.mlflow_run_id, clf2.mlflow_run_id):
        run = client.get_run(run_id)
        assert run.data.params["training_processes"] == "2"
        assert run.info.status == "FINISHED"
    assert "loss" in client.get_run(enc2.mlflow_run_id).data.metrics  # from the Trainer's callback on rank 0
    assert client.get_run(enc1.mlflow_run_id).data.params["training_processes"] == "1"


@pytest.mark.slow
def test_a_user_error_in_a_training_process_stays_a_user_error(workspace):
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={workspace}", *TINY])
    ws = cfg.workspace.resolved()
    data = prepare_data(cfg.data, ws)
    job = FinetuneJob(
        cfg=cfg.finetune.model_copy(update={"nproc_per_node": 2}),
        data=data,
        tokenizer=train_tokenizer(cfg.tokenizer, data, ws),
        base=str(workspace / "no-such-checkpoint"),
        workdir=str(ws.local_dir("finetune", "bad")),
        resume=None,
        resume_step=0,
        faults_dir=str(ws.local_dir("faults")),
    )
    with pytest.raises(PipelineInputError, match="no-such-checkpoint' could not be loaded"):
        distributed.run(train_classifier, job, 2)


def test_batch_must_split_evenly_across_processes():
    with pytest.raises(PipelineInputError, match=r"pretrain.*batch_size \(64\) must be a multiple of nproc_per_node"):
        load_config(ROOT / "configs" / "tiny.yaml", ["pretrain.nproc_per_node=3"])
