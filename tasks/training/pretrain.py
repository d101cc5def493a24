"""The pretrain stage: masked-LM pretraining of a BERT-style encoder with the transformers Trainer.

From scratch (shape from config) or continued from `init_from`. Checkpoints every `save_steps`
land in the workspace, keyed by inputs and code; when the task is retried, training resumes from
the newest checkpoint instead of step 0. Loss and perplexity go to MLflow. With `nproc_per_node > 1`
the Trainer loop runs data-parallel under torchrun (`tasks/training/distributed.py`); the result is the same.

Its result (`EncoderArtifact`) is in `tasks/results.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
from pydantic import BaseModel, Field
from transformers import DataCollatorForLanguageModeling, Trainer, set_seed

from core import reporting
from core.errors import PipelineInputError
from core.faults import step_fault_callback
from core.tracking import Tracking
from core.workspace import Workspace
from models.device import describe_device
from models.encoder import EncoderShape, build_masked_lm, count_parameters, load_masked_lm
from tasks.data.loaders import load_corpus, load_splits, load_tokenizer
from tasks.results.classification import EncoderArtifact
from tasks.results.data import PreparedData, TokenizerArtifact
from tasks.training.common import TrainingJob, optim_params, pretraining_arguments, report_stage, training_run
from tasks.training.settings import OptimConfig, TrainingConfig
from tasks.training.skeleton import TrainingStage


class PretrainConfig(TrainingConfig):
    """Masked-LM pretraining. Switch off with `enabled: false` to fine-tune an existing checkpoint."""

    enabled: bool = True
    init_from: str | None = Field(None, description="Continue from this checkpoint (path or hub name).")
    shape: EncoderShape = EncoderShape()
    max_steps: int = Field(300, gt=0)
    save_steps: int = Field(100, gt=0, description="Checkpoint every N steps (resume point on retry).")
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    optim: OptimConfig = OptimConfig(batch_size=64, learning_rate=1e-3, warmup_steps=30)


def _tokenize(batch, tok, max_length: int):
    return tok(batch["text"], truncation=True, max_length=max_length, return_special_tokens_mask=True)


class PretrainJob(TrainingJob):
    """What one training process needs (the shared fields: `TrainingJob`)."""

    cfg: PretrainConfig
    data: PreparedData
    tokenizer: TokenizerArtifact


class TrainedEncoder(BaseModel):
    global_step: int
    eval_loss: float
    parameters: int
    processes: int  # that really trained together (data-parallel)
    train_seconds: float


class _TiedWeightsTrainer(Trainer):
    """The Trainer, without a false alarm when it resumes a model with tied weights.

    A checkpoint stores a tied tensor once: `cls.predictions.decoder.weight` is the word-embedding matrix and
    `cls.predictions.decoder.bias` is `cls.predictions.bias`. Loading the checkpoint fills the tensor and so both
    names, but the Trainer still reports the aliases as missing keys, "newly initialized" (transformers#27972;
    the state dict after resume equals the checkpoint's, see tests/test_lifecycle.py). Keys restored through a tie
    are dropped from that report; any other missing key still warns.
    """

    def _issue_warnings_after_load(self, load_result) -> None:
        restored = _restored_through_tie(self.model, load_result.missing_keys)
        missing = [key for key in load_result.missing_keys if key not in restored]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))


def _restored_through_tie(model, missing: list[str]) -> set[str]:
    """Missing names whose parameter is shared with a name that was loaded."""
    names_of: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    missing_set = set(missing)
    return {name for names in names_of.values() if set(names) - missing_set for name in names if name in missing_set}


def build_trainer(job: PretrainJob) -> Trainer:
    """The model (new, or from `init_from`), the tokenized corpus and the Trainer that pretrains it."""
    cfg = job.cfg
    set_seed(cfg.optim.seed)  # the new model's initial weights must not depend on what ran before in this process
    tok = load_tokenizer(job.tokenizer)
    if cfg.init_from:
        model = load_masked_lm(cfg.init_from)
        if len(tok) > model.config.vocab_size:
            raise PipelineInputError(
                f"pretrain.init_from='{cfg.init_from}' has {model.config.vocab_size} token embeddings but the "
                f"tokenizer has {len(tok)} tokens; use the checkpoint's own tokenizer (tokenizer.pretrained)"
            )
    else:
        model = build_masked_lm(cfg.shape, len(tok), tok.pad_token_id)
    max_length = model.config.max_position_embeddings
    args = pretraining_arguments(
        job.workdir,
        cfg,
        include_num_input_tokens_seen=True,
    )
    kwargs = {"tok": tok, "max_length": max_length}
    with args.main_process_first(desc="tokenizing"):  # one process tokenizes, the others read its cache
        train_set = load_corpus(job.data).map(
            _tokenize, batched=True, remove_columns=["text"], fn_kwargs=kwargs, desc="tokenizing corpus"
        )
        held_out = load_splits(job.data)["validation"]  # a classifier's has labels, another kind's text view not
        eval_set = held_out.map(
            _tokenize,
            batched=True,
            remove_columns=held_out.column_names,
            fn_kwargs=kwargs,
            desc="tokenizing validation",
        )
    callbacks = [cb for cb in [step_fault_callback("pretrain", Path(job.faults_dir))] if cb]
    return _TiedWeightsTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tok,
        data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=cfg.mlm_probability),
        callbacks=callbacks,
    )


def train_encoder(job: PretrainJob) -> TrainedEncoder:
    """The Trainer loop; runs in the task's process, or in each of `nproc_per_node` processes (rank 0 saves)."""
    trainer = build_trainer(job)
    if trainer.is_world_process_zero():
        reporting.logger().info(
            "pretraining a %.2fM-parameter encoder on %s for %d steps%s",
            count_parameters(trainer.model) / 1e6,
            describe_device(job.cfg.nproc_per_node),
            job.cfg.max_steps,
            f", resuming from step {job.resume_step}" if job.resume else "",
        )
    train_output = trainer.train(resume_from_checkpoint=job.resume)
    metrics = trainer.evaluate()
    trainer.save_model(str(Path(job.workdir) / "model"))  # rank 0 only: safetensors + config + tokenizer
    return TrainedEncoder(
        global_step=trainer.state.global_step,
        eval_loss=metrics["eval_loss"],
        parameters=count_parameters(trainer.model),
        processes=trainer.accelerator.num_processes,
        train_seconds=train_output.metrics["train_runtime"],
    )


def pretrain(
    cfg: PretrainConfig,
    data: PreparedData,
    tokenizer: TokenizerArtifact,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> EncoderArtifact:
    run = TrainingStage("pretrain", ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri)
    with run.locked() as resume:
        resume_step = resume["resume_step"]
        job = PretrainJob(
            cfg=cfg,
            data=data,
            tokenizer=tokenizer,
            **resume,
        )
        tags = {"zero2one.data_fingerprint": data.fingerprint}
        with training_run("pretrain", train_encoder, job, tracking, parent_run_id, tags) as (trained, run_id):
            perplexity = math.exp(min(trained.eval_loss, 50))
            shape = {f"shape.{k}": v for k, v in cfg.shape.model_dump(mode="json").items()}
            used = {"max_steps": cfg.max_steps, "mlm_probability": cfg.mlm_probability, **optim_params(cfg.optim)}
            mlflow.log_params(used | shape | {"parameters": trained.parameters})
            mlflow.log_metrics({"eval_loss": trained.eval_loss, "perplexity": perplexity}, step=trained.global_step)
        uri = run.publish("model")
    report_stage(
        "pretrain",
        f"# Pretraining\n\n{trained.parameters / 1e6:.2f}M parameters, {trained.global_step} steps"
        f"{f' (resumed from step {resume_step})' if resume_step else ''}\n\n"
        f"validation MLM loss {trained.eval_loss:.3f}, perplexity {perplexity:.1f}\n\nEncoder: `{uri}`  \n",
        tracking,
        run_id,
    )
    return EncoderArtifact(
        uri=uri,
        global_step=trained.global_step,
        resumed_from_step=resume_step,
        eval_loss=trained.eval_loss,
        perplexity=perplexity,
        parameters=trained.parameters,
        mlflow_run_id=run_id,
        train_seconds=trained.train_seconds,
    )
