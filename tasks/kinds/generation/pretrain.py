"""The causal_pretrain stage: next-token pretraining of a Llama-shaped decoder with the Trainer.

Sequence packing, as in transformers' `run_clm.py`: the corpus is tokenized, each text ends with the eos token,
everything is concatenated and cut into blocks of `block_size` tokens, so no batch holds a single pad token and
every token trained on is real text. From scratch (shape from config) or continued from `init_from` (any
causal-LM checkpoint). Checkpoints every `save_steps` land in the workspace, keyed by inputs and code; a retried
task resumes from the newest one (the same mechanics as MLM pretraining, `tasks/training/common.py`). Loss, perplexity
and tokens/s go to MLflow. `nproc_per_node > 1` trains data-parallel under torchrun (`tasks/training/distributed.py`).

Its result (`DecoderArtifact`) is in `tasks/results.py`.
"""

from __future__ import annotations

import math
from itertools import chain
from pathlib import Path

import mlflow
from pydantic import BaseModel, Field, field_validator
from transformers import DataCollatorForLanguageModeling, Trainer, set_seed

from core import reporting
from core.errors import PipelineInputError
from core.faults import step_fault_callback
from core.tracking import Tracking
from core.workspace import Workspace
from models.decoder import SHAPES, DecoderShape, build_causal_lm, context_length, load_causal_lm
from models.device import describe_device
from models.encoder import count_parameters
from tasks.data.loaders import load_corpus, load_tokenizer
from tasks.results.data import PreparedInstructions, TokenizerArtifact
from tasks.results.generation import DecoderArtifact
from tasks.training.common import TrainingJob, pretraining_arguments, report_stage, training_run
from tasks.training.settings import OptimConfig, TrainingConfig
from tasks.training.skeleton import TrainingStage

STAGE = "causal_pretrain"


class CausalPretrainConfig(TrainingConfig):
    """Causal-LM pretraining. Switch off with `enabled: false` to instruction-tune an existing checkpoint."""

    enabled: bool = True
    init_from: str | None = Field(None, description="Continue from this causal-LM checkpoint (folder or hub name).")
    shape: DecoderShape = Field(DecoderShape(), description=f"A decoder shape, or a preset name: {sorted(SHAPES)}.")
    block_size: int | None = Field(None, gt=8, description="Tokens per packed sequence; default: the context length.")
    max_steps: int = Field(300, gt=0)
    save_steps: int = Field(100, gt=0, description="Checkpoint every N steps (resume point on retry).")
    optim: OptimConfig = OptimConfig(batch_size=16, learning_rate=2e-3, warmup_steps=30)

    @field_validator("shape", mode="before")
    @classmethod
    def _preset(cls, value: object) -> object:
        if isinstance(value, str):
            if value not in SHAPES:
                raise ValueError(f"unknown shape '{value}'; use one of {sorted(SHAPES)} or give the fields")
            return SHAPES[value]
        return value


class CausalPretrainJob(TrainingJob):
    """What one training process needs (the shared fields: `TrainingJob`)."""

    cfg: CausalPretrainConfig
    data: PreparedInstructions
    tokenizer: TokenizerArtifact


class TrainedDecoder(BaseModel):
    global_step: int
    eval_loss: float
    parameters: int
    processes: int  # that really trained together (data-parallel)
    train_seconds: float
    tokens_per_second: float


def pack(batch: dict, tok, block_size: int) -> dict:
    """Tokenize texts, end each with eos, concatenate, cut into full blocks (the remainder is dropped)."""
    ids = tok(batch["text"], add_special_tokens=False)["input_ids"]
    stream = list(chain.from_iterable(x + [tok.eos_token_id] for x in ids))
    n = len(stream) // block_size * block_size
    return {"input_ids": [stream[i : i + block_size] for i in range(0, n, block_size)]}


def packed(split, tok, block_size: int, desc: str):
    return split.map(
        pack,
        batched=True,
        remove_columns=split.column_names,
        fn_kwargs={"tok": tok, "block_size": block_size},
        desc=desc,
    )


def _model(cfg: CausalPretrainConfig, tok):
    if not cfg.init_from:
        return build_causal_lm(cfg.shape, len(tok), tok.pad_token_id, tok.eos_token_id)
    try:
        model = load_causal_lm(cfg.init_from)
    except (OSError, ValueError) as e:
        raise PipelineInputError(f"causal_pretrain.init_from='{cfg.init_from}' could not be loaded: {e}") from e
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise PipelineInputError(
            f"causal_pretrain.init_from='{cfg.init_from}' has {model.get_input_embeddings().num_embeddings} token "
            f"embeddings but the tokenizer has {len(tok)} tokens; use the checkpoint's own tokenizer "
            "(generation_tokenizer.pretrained)"
        )
    return model


def _packed_corpus(job: CausalPretrainJob, tok, block: int):
    """The corpus' train and validation parts as full blocks of `block` tokens; an error when either is empty."""
    corpus = load_corpus(job.data)
    train_set = packed(corpus["train"], tok, block, "packing corpus")
    eval_set = packed(corpus["validation"], tok, block, "packing validation")
    if len(train_set) == 0 or len(eval_set) == 0:
        raise PipelineInputError(
            f"the pretraining corpus of {job.data.uri} has fewer than {block} tokens in its train or validation "
            "part; give a larger corpus or a smaller causal_pretrain.block_size"
        )
    return train_set, eval_set


def train_decoder(job: CausalPretrainJob) -> TrainedDecoder:
    """The Trainer loop; runs in the task's process, or in each of `nproc_per_node` processes (rank 0 saves)."""
    cfg = job.cfg
    set_seed(cfg.optim.seed)  # the new model's initial weights must not depend on what ran before in this process
    tok = load_tokenizer(job.tokenizer)
    model = _model(cfg, tok)
    block = min(cfg.block_size or 10**9, context_length(model))
    args = pretraining_arguments(
        job.workdir,
        cfg,
    )
    with args.main_process_first(desc="packing"):  # one process tokenizes, the others read its cache
        train_set, eval_set = _packed_corpus(job, tok, block)
    callbacks = [cb for cb in [step_fault_callback(STAGE, Path(job.faults_dir))] if cb]
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tok,
        # Every block is full, so this collator never pads; it only copies input_ids to labels (shifted in the model).
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        callbacks=callbacks,
    )
    if trainer.is_world_process_zero():
        reporting.logger().info(
            "pretraining a %.2fM-parameter decoder on %s: %d packed blocks of %d tokens, %d steps%s",
            count_parameters(model) / 1e6,
            describe_device(cfg.nproc_per_node),
            len(train_set),
            block,
            cfg.max_steps,
            f", resuming from step {job.resume_step}" if job.resume else "",
        )
    output = trainer.train(resume_from_checkpoint=job.resume)
    metrics = trainer.evaluate()
    trainer.save_model(str(Path(job.workdir) / "model"))  # rank 0 only: safetensors + config + tokenizer
    steps = trainer.state.global_step - job.resume_step
    tokens = steps * cfg.optim.batch_size * cfg.optim.gradient_accumulation_steps * block
    seconds = output.metrics["train_runtime"]
    return TrainedDecoder(
        global_step=trainer.state.global_step,
        eval_loss=metrics["eval_loss"],
        parameters=count_parameters(model),
        processes=trainer.accelerator.num_processes,
        train_seconds=seconds,
        tokens_per_second=tokens / seconds if seconds else 0.0,
    )


def causal_pretrain(
    cfg: CausalPretrainConfig,
    data: PreparedInstructions,
    tokenizer: TokenizerArtifact,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> DecoderArtifact:
    run = TrainingStage(STAGE, ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri)
    with run.locked() as resume:
        resume_step = resume["resume_step"]
        job = CausalPretrainJob(
            cfg=cfg,
            data=data,
            tokenizer=tokenizer,
            **resume,
        )
        tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.task": "generation"}
        with training_run(STAGE, train_decoder, job, tracking, parent_run_id, tags) as (trained, run_id):
            perplexity = math.exp(min(trained.eval_loss, 50))
            mlflow.log_params({"parameters": trained.parameters})
            mlflow.log_metrics(
                {
                    "eval_loss": trained.eval_loss,
                    "perplexity": perplexity,
                    "tokens_per_second": trained.tokens_per_second,
                },
                step=trained.global_step,
            )
        uri = run.publish("model")
    report_stage(
        STAGE,
        f"# Causal pretraining\n\n{trained.parameters / 1e6:.2f}M parameters, {trained.global_step} steps"
        f"{f' (resumed from step {resume_step})' if resume_step else ''}, {trained.tokens_per_second:,.0f} tokens/s"
        f"\n\nvalidation loss {trained.eval_loss:.3f}, perplexity {perplexity:.2f}\n\nDecoder: `{uri}`  \n",
        tracking,
        run_id,
    )
    reporting.logger().info(
        "pretrained decoder: validation perplexity %.2f, %.0f tokens/s -> %s",
        perplexity,
        trained.tokens_per_second,
        uri,
    )
    return DecoderArtifact(
        uri=uri,
        global_step=trained.global_step,
        resumed_from_step=resume_step,
        eval_loss=trained.eval_loss,
        perplexity=perplexity,
        parameters=trained.parameters,
        tokens_per_second=trained.tokens_per_second,
        train_seconds=trained.train_seconds,
        mlflow_run_id=run_id,
    )
