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
them at the end, so what is saved is always a plain causal LM (the adapter alone is kept too, as an artifact).
Settings left unset come from a recipe (`tasks/kinds/generation/sft_recipe.py`): `pretrained` (LoRA on every linear
layer, p99
length, steps capped on CPU) when `base_model` names a checkpoint - a folder, hub name, `pkg:` package or GGUF
file, converted once per workspace by `tasks/kinds/generation/llm_checkpoint.py` - else `from-scratch`. An
instruction longer than
the model's context stops the run before the first step. A retried task resumes from the newest checkpoint.

Its result (`InstructionTunedModel`) is in `tasks/results.py`; `encode_chat` and `fit_to_context` in
`tasks/kinds/generation/chats.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import torch
from peft import LoraConfig, TaskType, get_peft_model
from pydantic import BaseModel
from transformers import set_seed
from trl import SFTConfig, SFTTrainer

from core import reporting
from core.errors import PipelineInputError
from core.faults import step_fault_callback
from core.tracking import Tracking
from core.workspace import Workspace
from models.decoder import context_length, load_causal_lm
from models.device import describe_device
from models.encoder import count_parameters
from models.lora import LoraSettings, merge_lora
from tasks.data.loaders import load_splits, load_tokenizer
from tasks.kinds.generation.chats import IGNORE, encode_chat, fit_to_context
from tasks.kinds.generation.llm_checkpoint import conversion_record, resolve_checkpoint
from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.sft_recipe import SFT_RECIPES, SftPlan, check_prompts_fit, plan_sft
from tasks.results.data import PreparedInstructions, TokenizerArtifact
from tasks.results.generation import DecoderArtifact, InstructionTunedModel
from tasks.training.common import (
    TrainingJob,
    report_stage,
    training_arguments,
    training_run,
)
from tasks.training.skeleton import TrainingStage

STAGE = "sft"


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


def _lora(model, settings: LoraSettings | None):
    """Adapters (default: the from-scratch recipe's, on the attention projections), base weights frozen."""
    settings = settings or SFT_RECIPES["from-scratch"].lora
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
    plan: SftPlan | None = None


def _sft_args(job: SftJob, plan: SftPlan) -> SFTConfig:
    """Our Trainer arguments (`tasks/training/common.py`) as TRL's config, plus how TRL batches."""
    cfg = job.cfg
    args = training_arguments(
        Path(job.workdir),
        plan.optim,
        cfg.nproc_per_node,
        num_train_epochs=plan.epochs,
        max_steps=plan.max_steps,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        train_sampling_strategy="group_by_length" if cfg.batching == "group_by_length" else "random",
        neftune_noise_alpha=plan.neftune_noise_alpha or None,
    )
    return SFTConfig(
        **args.to_dict(),
        padding_free=cfg.batching == "padding_free",
        max_length=None,  # chats are cut to max_length by the length policy, before TRL sees them
        dataset_kwargs={"skip_prepare_dataset": True},  # already tokenized, labels included
    )


def _load_base(job: SftJob, tok):
    try:
        model = load_causal_lm(job.base)
    except (OSError, ValueError) as e:
        raise PipelineInputError(f"sft base model '{job.base}' could not be loaded: {e}") from e
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise PipelineInputError(
            f"tokenizer ({len(tok)} tokens, {job.tokenizer.uri}) does not match model '{job.base}' "
            f"({model.get_input_embeddings().num_embeddings} embeddings); use the model's own tokenizer"
        )
    return model


def _plan(job: SftJob, tok, splits, context: int) -> SftPlan:
    """The recipe resolved on this data and model; a prompt the model cannot even read stops the run here."""
    train = splits["train"]["messages"]
    lengths = [len(encode_chat(tok, m)["input_ids"]) for m in train]
    p99 = int(math.ceil(np.percentile(lengths, 99))) if lengths else None
    for name in ("train", "validation", "test"):
        check_prompts_fit(splits[name], tok, context, name)
    return plan_sft(job.cfg, len(train), context, p99, on_gpu=torch.cuda.is_available())


def train_instructions(job: SftJob) -> TrainedInstructions:
    """The SFT loop; runs in the task's process, or in each of `nproc_per_node` processes (rank 0 saves)."""
    cfg = job.cfg
    set_seed(cfg.optim.seed)  # LoRA's initial adapters must not depend on what ran before in this process
    tok = load_tokenizer(job.tokenizer)
    model = _load_base(job, tok)
    n_params = count_parameters(model)  # what is saved: LoRA is merged back into these weights
    splits = load_splits(job.data)
    plan = _plan(job, tok, splits, context_length(model))
    args = _sft_args(job, plan)
    with args.main_process_first(desc="tokenizing"):
        train_set, too_long = _encoded(splits["train"], tok, plan.max_length, plan.on_too_long, "train")
        eval_set, eval_too_long = _encoded(splits["validation"], tok, plan.max_length, plan.on_too_long, "validation")
    if plan.method == "lora":
        model = _lora(model, plan.lora)
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
            "instruction-tuning (%s, %s batches) %s on %s: %d train / %d validation chats, %d too long (%s); %s%s",
            plan.method,
            cfg.batching,
            job.base,
            describe_device(cfg.nproc_per_node),
            len(train_set),
            len(eval_set),
            too_long + eval_too_long,
            plan.on_too_long,
            plan.describe(),
            f", resuming from step {job.resume_step}" if job.resume else "",
        )
    output = trainer.train(resume_from_checkpoint=job.resume)
    best = trainer.evaluate()
    if trainer.is_world_process_zero():
        _save(trainer, tok, plan, Path(job.workdir))
    return TrainedInstructions(
        global_step=trainer.state.global_step,
        eval_loss=best["eval_loss"],
        parameters=n_params,
        processes=trainer.accelerator.num_processes,
        too_long=too_long + eval_too_long,
        samples_per_second=output.metrics.get("train_samples_per_second", 0.0),
        plan=plan,
    )


def _save(trainer, tok, plan: SftPlan, workdir: Path) -> None:
    """The merged model (LoRA folded in: a plain causal LM) in `model/`, the adapter alone in `adapter/`."""
    if plan.method == "lora":
        trainer.model.save_pretrained(str(workdir / "adapter"))
        final = merge_lora(trainer.model)
    else:
        final = trainer.model
    final.save_pretrained(str(workdir / "model"))
    tok.save_pretrained(str(workdir / "model"))


def _log_run(plan: SftPlan, trained: TrainedInstructions, perplexity: float, job: SftJob, workdir: Path) -> None:
    """Into the sft MLflow run: the resolved settings, the scores, the adapter and the base's conversion record."""
    mlflow.log_params(
        {"recipe": plan.recipe, "method": plan.method, "on_too_long": plan.on_too_long, "max_length": plan.max_length}
        | {
            "max_steps": plan.max_steps,
            "learning_rate": plan.optim.learning_rate,
            "warmup_steps": plan.optim.warmup_steps,
        }
    )
    mlflow.log_metrics(
        {"best_eval_loss": trained.eval_loss, "answer_perplexity": perplexity, "too_long": trained.too_long},
        step=trained.global_step,
    )
    if plan.method == "lora":
        mlflow.log_artifacts(str(workdir / "adapter"), artifact_path="adapter")
    if record := conversion_record(job.base):
        mlflow.log_dict(record, "base_model/conversion.json")


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
    run = TrainingStage(STAGE, ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base)
    with run.locked() as resume:
        resume_step = resume["resume_step"]
        job = SftJob(
            cfg=cfg,
            data=data,
            tokenizer=tokenizer,
            base=resolve_checkpoint(base, ws),  # a GGUF source: its converted folder (made by the tokenizer stage)
            **resume,
        )
        tags = {
            "zero2one.data_fingerprint": data.fingerprint,
            "zero2one.base_model": base,
            "zero2one.task": "generation",
        }
        params = {"batching": cfg.batching}
        with training_run(STAGE, train_instructions, job, tracking, parent_run_id, tags, params) as (trained, run_id):
            plan, perplexity = trained.plan, math.exp(min(trained.eval_loss, 50))
            _log_run(plan, trained, perplexity, job, run.workdir)
        uri = run.publish("model")
    adapter = f", adapter `{run.publish('adapter')}`" if plan.method == "lora" else ""
    report_stage(
        STAGE,
        f"# Instruction tuning ({plan.method}, {cfg.batching})\n\n{plan.describe()}\n\n"
        f"{trained.parameters / 1e6:.2f}M parameters, "
        f"{trained.global_step} steps, {trained.samples_per_second:.1f} chats/s; best validation answer loss "
        f"{trained.eval_loss:.3f} (perplexity {perplexity:.2f}); {trained.too_long} chats too long "
        f"({plan.on_too_long})\n\nModel (merged): `{uri}`{adapter}  \n",
        tracking,
        run_id,
    )
    return InstructionTunedModel(
        uri=uri,
        base_model=base,
        method=plan.method,
        global_step=trained.global_step,
        resumed_from_step=resume_step,
        eval_loss=trained.eval_loss,
        perplexity=perplexity,
        too_long=trained.too_long,
        samples_per_second=trained.samples_per_second,
        mlflow_run_id=run_id,
        pretrain_run_id=decoder.mlflow_run_id if decoder else None,
    )
