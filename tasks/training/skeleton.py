"""The skeleton every training stage runs (pretrain, causal_pretrain, finetune, sft): one content key, one work
folder, one lock, resume from the newest checkpoint, publish to the workspace. The stages keep only what differs:
their job, their Trainer and what they log.

    run = TrainingStage("finetune", ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base)
    with run.locked() as resume:  # {workdir, resume, resume_step, faults_dir}
        job = FinetuneJob(cfg=cfg, data=data, ..., **resume)
        with training_run("finetune", train_classifier, job, tracking, parent_run_id, tags) as (trained, run_id):
            ...  # log what the stage chose
        uri = run.publish("model")

`training_run` (`tasks/training/common.py`) opens the stage's MLflow run and starts the Trainer in this process or
under torchrun (`tasks/training/distributed.py`); `core.checkpoints.local_checkpoint` makes a packaged or remote
checkpoint a local folder first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock

from core.fingerprint import code_fingerprint, hash_json
from core.storage import publish_dir
from core.workspace import Workspace
from tasks.training.common import resume_fields


class TrainingStage:
    """Where one training stage's run lives: `<workspace>/<stage>/<key>`, keyed by its inputs and our code."""

    def __init__(self, stage: str, ws: Workspace, *inputs: object):
        self.stage, self.ws = stage, ws
        self.key = hash_json(*inputs, code_fingerprint())
        self.workdir = ws.local_dir(stage, self.key)

    @contextmanager
    def locked(self) -> Iterator[dict[str, str | int | None]]:
        """Hold the work folder, and say where to resume. Runs with the same inputs (a scheduled retrain meeting a
        manual run) share the folder: one trains, the others wait, then resume from its last checkpoint, instead of
        several Trainers writing checkpoints into it."""
        with FileLock(str(self.workdir / ".lock")):
            yield resume_fields(self.workdir, self.ws)

    def publish(self, folder: str = "model") -> str:
        """Copy `folder` of the work folder to the workspace (any fsspec URL); its URI."""
        return publish_dir(self.workdir / folder, self.ws.uri(self.stage, self.key, folder))
