"""The sft stage: instruction tuning of the decoder, loss on the answer tokens only.

Trainer: TRL's `SFTTrainer` (TRL 1.16 runs on transformers 5 / torch 2.13 here), for its padding-free collator:
with `batching: padding_free` a batch is the chats laid end to end in one row, with position ids restarting at
each chat, and transformers builds a block-diagonal causal mask from them, so no pad token is computed and no chat
sees another. `group_by_length` (length-grouped, padded batches) and `pad` (padded to the longest, the baseline)
use the same collator with padding. We tokenize ourselves (`encode_chat`) rather than let TRL render the chats:
the mask is then one small function the tests check, and the context-length policy (error / truncate / drop,
`tasks/instruction_data.fit_to_context`) runs on exact token counts before the first step.

The loss covers the last assistant message only (`{answer}<|end|>`, so the model learns to stop); the prompt,
and earlier turns of a multi-turn chat, are context (labels -100). `method: lora` trains `peft` adapters and merges
them at the end, so what is saved is always a plain causal LM. A retried task resumes from the newest checkpoint.

Its result (`InstructionTunedModel`) is in `tasks/artifacts.py`; `encode_chat` and `fit_to_context` in `tasks/chats.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import mlflow
from peft import LoraConfig, TaskType, get_peft_model
from pydantic import BaseModel, Field
from transformers import set_seed
from trl import SFTConfig, SFTTrainer

from models.decoder import context_length, load_causal_lm
from models.device import describe_device
from models.encoder import count_parameters
from models.lora import LoraSettings, merge_lora
from tasks import reporting
from tasks.artifacts import DecoderArtifact, InstructionTunedModel, PreparedInstructions, TokenizerArtifact
from tasks.chats import IGNORE, encode_chat, fit_to_context
from tasks.errors import PipelineInputError
from tasks.faults import step_fault_callback
from tasks.fingerprint import code_fingerprint, hash_json
from tasks.loaders import load_splits, load_tokenizer
from tasks.storage import materialize, publish_dir
from tasks.tracking import Tracking
from tasks.training import (
    OptimConfig,
    TrainingConfig,
    TrainingJob,
    report_stage,
    resume_fields,
    training_arguments,
    training_run,
)
from tasks.workspace import Workspace, is_remote

STAGE = "sft"


class SftConfig(TrainingConfig):
    """Instruction tuning. The decoder is the pretraining output unless `base_model` is set."""

    base_model: str | None = Field(None, description="Causal-LM folder or hub name; default: the pretrained decoder.")
    method: Literal["full", "lora"] = "full"
    epochs: float = Field(3, gt=0)
    max_length: int | None = Field(None, gt=8, description="Tokens per chat (default: the model's context length).")
    on_too_long: Literal["error", "truncate", "drop"] = Field(
        "error", description="Chats longer than max_length: stop, cut the end, or drop them (counted)."
    )
    batching: Literal["padding_free", "group_by_length", "pad"] = Field(
        "padding_free", description="padding_free: chats end to end, no pad tokens; or padded batches."
    )
    lora: LoraSettings = LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    optim: OptimConfig = OptimConfig(batch_size=16, learning_rate=1e-3, warmup_steps=20)


def _encoded(split, tok, max_length: int, policy: str, name: str):
    """The split after the length policy, tokenized; chats left without an answer token are dropped."""
    split, too_long = fit_to_context(
        split, lambda m: len(encode_chat(tok, m)["input_ids"]), max_length, policy, f"{name} split"
    )
    enc = split.map(
        lambda row: encode_chat(tok, row["messages"], max_length),
        remove_columns=split.column_names,
        desc=f"tokenizing {name}",
    )
    enc = enc.filter(lambda row: any(x != IGNORE for x in row["labels"]))
    return enc, too_long


def _lora(model, settings: LoraSettings):
    """Adapters on the attention projections, base weights frozen (peft CAUSAL_LM)."""
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
    )
    return get_peft_model(model, config)


class SftJob(TrainingJob):
    """What one training process needs (the shared fields: `TrainingJob`)."""

    cfg: SftConfig
    data: PreparedInstructions
    tokenizer: TokenizerArtifact
    base: str


class TrainedInstructions(BaseModel):
    global_step: int
    eval_loss: float
    parameters: int
    processes: int  # that really trained together (data-parallel)
    too_long: int
    samples_per_second: float


def _sft_args(job: SftJob) -> SFTConfig:
    """Our Trainer arguments (`tasks/training.py`) as TRL's config, plus how TRL batches."""
    cfg = job.cfg
    args = training_arguments(
        Path(job.workdir),
        cfg.optim,
        cfg.nproc_per_node,
        num_train_epochs=cfg.epochs,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        train_sampling_strategy="group_by_length" if cfg.batching == "group_by_length" else "random",
    )
    return SFTConfig(
        **args.to_dict(),
        padding_free=cfg.batching == "padding_free",
        max_length=None,  # chats are cut to max_length by the length policy, before TRL sees them
        dataset_kwargs={"skip_prepare_dataset": True},  # already tokenized, labels included
    )


def train_instructions(job: SftJob) -> TrainedInstructions:
    """The SFT loop; runs in the task's process, or in each of `nproc_per_node` processes (rank 0 saves)."""
    cfg = job.cfg
    set_seed(cfg.optim.seed)  # LoRA's initial adapters must not depend on what ran before in this process
    tok = load_tokenizer(job.tokenizer)
    try:
        model = load_causal_lm(job.base)
    except (OSError, ValueError) as e:
        raise PipelineInputError(f"sft base model '{job.base}' could not be loaded: {e}") from e
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise PipelineInputError(
            f"tokenizer ({len(tok)} tokens, {job.tokenizer.uri}) does not match model '{job.base}' "
            f"({model.get_input_embeddings().num_embeddings} embeddings); use the model's own tokenizer"
        )
    max_length = min(cfg.max_length or 10**9, context_length(model))
    args = _sft_args(job)
    with args.main_process_first(desc="tokenizing"):
        splits = load_splits(job.data)
        train_set, too_long = _encoded(splits["train"], tok, max_length, cfg.on_too_long, "train")
        eval_set, eval_too_long = _encoded(splits["validation"], tok, max_length, cfg.on_too_long, "validation")
    if cfg.method == "lora":
        model = _lora(model, cfg.lora)
    callbacks = [cb for cb in [step_fault_callback(STAGE, Path(job.faults_dir))] if cb]
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tok,
        callbacks=callbacks,
    )
    if trainer.is_world_process_zero():
        reporting.logger().info(
            "instruction-tuning (%s, %s batches) %s on %s: %d train / %d validation chats, %d too long (%s)%s",
            cfg.method,
            cfg.batching,
            job.base,
            describe_device(cfg.nproc_per_node),
            len(train_set),
            len(eval_set),
            too_long + eval_too_long,
            cfg.on_too_long,
            f", resuming from step {job.resume_step}" if job.resume else "",
        )
    output = trainer.train(resume_from_checkpoint=job.resume)
    best = trainer.evaluate()
    final = merge_lora(trainer.model) if cfg.method == "lora" else trainer.model
    if trainer.is_world_process_zero():
        model_dir = Path(job.workdir) / "model"
        final.save_pretrained(str(model_dir))
        tok.save_pretrained(str(model_dir))
    return TrainedInstructions(
        global_step=trainer.state.global_step,
        eval_loss=best["eval_loss"],
        parameters=count_parameters(final),
        processes=trainer.accelerator.num_processes,
        too_long=too_long + eval_too_long,
        samples_per_second=output.metrics.get("train_samples_per_second", 0.0),
    )


def sft(
    cfg: SftConfig,
    data: PreparedInstructions,
    tokenizer: TokenizerArtifact,
    decoder: DecoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> InstructionTunedModel:
    base = cfg.base_model or (decoder.uri if decoder else None)
    if base is None:
        raise PipelineInputError("sft.base_model is required when causal_pretrain.enabled=false")
    key = hash_json(cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base, code_fingerprint())
    workdir = ws.local_dir(STAGE, key)
    fields = resume_fields(workdir, ws)
    resume_step = fields["resume_step"]
    job = SftJob(
        cfg=cfg,
        data=data,
        tokenizer=tokenizer,
        base=str(materialize(base)) if is_remote(base) else base,
        **fields,
    )
    tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.base_model": base, "zero2one.task": "generation"}
    params = {"method": cfg.method, "batching": cfg.batching, "on_too_long": cfg.on_too_long}
    with training_run(STAGE, train_instructions, job, tracking, parent_run_id, tags, params) as (trained, run_id):
        perplexity = math.exp(min(trained.eval_loss, 50))
        mlflow.log_metrics(
            {"best_eval_loss": trained.eval_loss, "answer_perplexity": perplexity, "too_long": trained.too_long},
            step=trained.global_step,
        )
    uri = publish_dir(workdir / "model", ws.uri(STAGE, key, "model"))
    report_stage(
        STAGE,
        f"# Instruction tuning ({cfg.method}, {cfg.batching})\n\n{trained.parameters / 1e6:.2f}M parameters, "
        f"{trained.global_step} steps, {trained.samples_per_second:.1f} chats/s; best validation answer loss "
        f"{trained.eval_loss:.3f} (perplexity {perplexity:.2f}); {trained.too_long} chats too long "
        f"({cfg.on_too_long})\n\nModel: `{uri}`  \n",
        tracking,
        run_id,
    )
    return InstructionTunedModel(
        uri=uri,
        base_model=base,
        method=cfg.method,
        global_step=trained.global_step,
        resumed_from_step=resume_step,
        eval_loss=trained.eval_loss,
        perplexity=perplexity,
        too_long=trained.too_long,
        samples_per_second=trained.samples_per_second,
        mlflow_run_id=run_id,
        pretrain_run_id=decoder.mlflow_run_id if decoder else None,
    )
