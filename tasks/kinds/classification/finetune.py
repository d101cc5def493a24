"""The finetune stage: sequence classification on the pretrained encoder with the Trainer.

Hyperparameters the config leaves unset come from a recipe (`tasks/kinds/classification/recipes.py`): `pretrained`
for a checkpoint
named by `base_model`, `from-scratch` for the encoder the pretrain stage trained; `max_length` defaults to the
99th percentile of the training texts' token lengths. Dynamic padding (`DataCollatorWithPadding`) and
length-grouped batches keep padding short; early stopping watches the validation metric and the best
evaluation is kept. `method: lora` trains low-rank adapters through `peft` and merges them into the weights
at the end, so what is saved is always a plain Hugging Face classifier. A retried task resumes from the
newest checkpoint. With `nproc_per_node > 1` the Trainer loop runs data-parallel under torchrun
(`tasks/training/distributed.py`).

Its result (`FinetunedModel`) is in `tasks/results.py`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from pydantic import BaseModel
from sklearn.metrics import accuracy_score, f1_score
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

from core import reporting
from core.checkpoints import local_checkpoint
from core.errors import PipelineInputError
from core.faults import step_fault_callback
from core.tracking import Tracking
from core.workspace import Workspace
from models.device import describe_device
from models.encoder import build_classifier, count_parameters
from models.lora import apply_lora, merge_lora
from models.truncation import Truncation
from tasks.data.loaders import load_splits, load_tokenizer
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.recipe_trainer import RecipeTrainer
from tasks.kinds.classification.recipes import (
    DataShape,
    FinetunePlan,
    model_limit,
    plan_finetune,
    resolve_max_length,
)
from tasks.results import EncoderArtifact, FinetunedModel, PreparedData, TokenizerArtifact
from tasks.training.common import (
    TrainingJob,
    optim_params,
    report_stage,
    training_arguments,
    training_run,
)
from tasks.training.skeleton import TrainingStage


def classification_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="macro")}


def _tokenize(batch, tok, max_length: int, truncation: str = "head"):
    """Token ids cut to `max_length` as `TextClassifier` will cut them at prediction time (models/truncation.py)."""
    if truncation == "head":
        enc = tok(batch["text"], truncation=True, max_length=max_length)
    else:
        full = tok(batch["text"], truncation=False, verbose=False)
        enc = Truncation.for_window(truncation, max_length).cut_encoding(dict(full))[0]
    enc["length"] = [len(ids) for ids in enc["input_ids"]]  # for length-grouped batches
    return enc


class FinetuneJob(TrainingJob):
    """What one training process needs (the shared fields: `TrainingJob`)."""

    cfg: FinetuneConfig
    data: PreparedData
    tokenizer: TokenizerArtifact
    base: str


class TrainedClassifier(BaseModel):
    global_step: int
    best_metric: float
    parameters: int
    processes: int  # that really trained together (data-parallel)
    plan: FinetunePlan


def _arguments(job: FinetuneJob, plan: FinetunePlan):
    """Trainer arguments from the plan: evaluation, checkpoints and early stopping per epoch or every N steps."""
    if plan.eval_steps:
        schedule = {f"{what}_strategy": "steps" for what in ("eval", "save", "logging")}
        schedule |= {f"{what}_steps": plan.eval_steps for what in ("eval", "save", "logging")}
    else:
        schedule = {f"{what}_strategy": "epoch" for what in ("eval", "save", "logging")}
    return training_arguments(
        Path(job.workdir),
        plan.optim,
        job.cfg.nproc_per_node,
        num_train_epochs=plan.epochs,
        load_best_model_at_end=True,
        metric_for_best_model=job.cfg.metric,
        greater_is_better=True,
        train_sampling_strategy="group_by_length" if job.cfg.group_by_length else "random",
        label_smoothing_factor=plan.label_smoothing,
        **schedule,
    )


def _load_model(job: FinetuneJob, tok):
    """The classifier on the base checkpoint, refused early when the tokenizer does not fit it."""
    try:
        model = build_classifier(job.base, job.data.labels)
    except OSError as e:
        raise PipelineInputError(f"finetune base model '{job.base}' could not be loaded: {e}") from e
    if len(tok) > model.config.vocab_size:
        raise PipelineInputError(
            f"tokenizer ({len(tok)} tokens, {job.tokenizer.uri}) does not match model '{job.base}' "
            f"({model.config.vocab_size} embeddings); use the model's own tokenizer"
        )
    return apply_lora(model, job.cfg.lora) if job.cfg.method == "lora" else model


def _log_start(job: FinetuneJob, plan: FinetunePlan, n_train: int, n_validation: int) -> None:
    log = reporting.logger()
    log.info(
        "fine-tuning (%s) %s on %s: %d train / %d validation texts%s",
        job.cfg.method,
        job.base,
        describe_device(job.cfg.nproc_per_node),
        n_train,
        n_validation,
        f", resuming from step {job.resume_step}" if job.resume else "",
    )
    log.info("%s", plan.describe())


def train_classifier(job: FinetuneJob) -> TrainedClassifier:
    """The Trainer loop; runs in the task's process, or in each of `nproc_per_node` processes (rank 0 saves)."""
    cfg = job.cfg
    set_seed(cfg.optim.seed)  # the new head's initial weights must not depend on what ran before in this process
    tok = load_tokenizer(job.tokenizer)
    model = _load_model(job, tok)
    raw = load_splits(job.data)
    train_texts = list(raw["train"]["text"])
    max_length = resolve_max_length(cfg.max_length, tok, train_texts, model_limit(model.config, tok))
    counts = np.bincount(raw["train"]["label"], minlength=len(job.data.labels))
    plan = plan_finetune(cfg, DataShape(class_counts=counts.tolist()), max_length)
    model.config.zero2one_truncation = Truncation.for_window(cfg.truncation, plan.max_length).to_config()
    args = _arguments(job, plan)
    with args.main_process_first(desc="tokenizing"):  # one process tokenizes, the others read its cache
        splits = raw.map(
            _tokenize,
            batched=True,
            remove_columns=["text"],
            fn_kwargs={"tok": tok, "max_length": plan.max_length, "truncation": cfg.truncation},
            desc="tokenizing",
        )
    splits = splits.rename_column("label", "labels")
    callbacks = [EarlyStoppingCallback(early_stopping_patience=plan.patience)]
    if fault := step_fault_callback("finetune", Path(job.faults_dir)):
        callbacks.append(fault)
    trainer = RecipeTrainer(
        model=model,
        head_learning_rate=plan.head_learning_rate,
        class_weights=plan.class_weights,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=classification_metrics,
        callbacks=callbacks,
    )
    if trainer.is_world_process_zero():
        _log_start(job, plan, len(splits["train"]), len(splits["validation"]))
    trainer.train(resume_from_checkpoint=job.resume)
    best = trainer.evaluate()
    final = merge_lora(trainer.model) if cfg.method == "lora" else trainer.model
    if trainer.is_world_process_zero():
        model_dir = Path(job.workdir) / "model"
        final.save_pretrained(str(model_dir))
        tok.save_pretrained(str(model_dir))
    return TrainedClassifier(
        global_step=trainer.state.global_step,
        best_metric=best[f"eval_{cfg.metric}"],
        parameters=count_parameters(final),
        processes=trainer.accelerator.num_processes,
        plan=plan,
    )


def finetune(
    cfg: FinetuneConfig,
    data: PreparedData,
    tokenizer: TokenizerArtifact,
    encoder: EncoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> FinetunedModel:
    base = cfg.base_model or (encoder.uri if encoder else None)
    if base is None:
        raise PipelineInputError("finetune.base_model is required when pretrain.enabled=false")
    run = TrainingStage("finetune", ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base)
    with run.locked() as resume:
        resume_step = resume["resume_step"]
        job = FinetuneJob(
            cfg=cfg,
            data=data,
            tokenizer=tokenizer,
            base=local_checkpoint(base),
            **resume,
        )
        tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.base_model": base}
        params = {"method": cfg.method}
        with training_run("finetune", train_classifier, job, tracking, parent_run_id, tags, params) as (
            trained,
            run_id,
        ):
            plan = trained.plan
            used = {"recipe": plan.recipe, "recipe_max_length": plan.max_length, "epochs": plan.epochs}
            used |= {"total_steps": plan.total_steps, "eval_steps": plan.eval_steps or "epoch"}
            used |= {"head_learning_rate": plan.head_learning_rate or "same", "class_weights": bool(plan.class_weights)}
            mlflow.log_params(used | optim_params(plan.optim) | {"parameters": trained.parameters})
            mlflow.log_metrics({f"best_{cfg.metric}": trained.best_metric}, step=trained.global_step)
        uri = run.publish("model")
    report_stage(
        "finetune",
        f"# Fine-tuning ({cfg.method}, recipe {plan.recipe})\n\n{plan.describe()}\n\n"
        f"{trained.parameters / 1e6:.2f}M parameters, "
        f"{trained.global_step} steps; best validation {cfg.metric} {trained.best_metric:.4f}\n\nModel: `{uri}`  \n",
        tracking,
        run_id,
    )
    return FinetunedModel(
        uri=uri,
        base_model=base,
        method=cfg.method,
        recipe=plan.recipe,
        labels=data.labels,
        global_step=trained.global_step,
        resumed_from_step=resume_step,
        best_metric=trained.best_metric,
        metric=cfg.metric,
        mlflow_run_id=run_id,
        pretrain_run_id=encoder.mlflow_run_id if encoder else None,
    )
