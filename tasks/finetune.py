"""Stage 4, finetune: sequence classification on the pretrained encoder with the Trainer.

Dynamic padding (`DataCollatorWithPadding`) and length-grouped batches keep padding short;
early stopping watches the validation metric and the best epoch is kept. `method: lora` trains
low-rank adapters through `peft` and merges them into the weights at the end, so what is saved
is always a plain Hugging Face classifier. A retried task resumes from the newest checkpoint.
"""

from __future__ import annotations

from typing import Literal

import mlflow
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import accuracy_score, f1_score
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

from models.device import describe_device
from models.encoder import build_classifier, count_parameters
from models.lora import LoraSettings, apply_lora, merge_lora
from tasks import reporting
from tasks.data import PreparedData, load_splits
from tasks.errors import PipelineInputError
from tasks.faults import maybe_fail, step_fault_callback
from tasks.fingerprint import code_fingerprint, hash_json
from tasks.orchestration import RetryPolicy
from tasks.pretrain import EncoderArtifact
from tasks.storage import materialize, publish_dir
from tasks.tokenizer import TokenizerArtifact, load_tokenizer
from tasks.tracking import Tracking, stage_run
from tasks.training import OptimConfig, last_checkpoint, training_arguments
from tasks.workspace import Workspace, is_remote


class FinetuneConfig(BaseModel):
    """Fine-tune a classifier. The encoder is the pretraining output unless `base_model` is set."""

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = Field(None, description="Local checkpoint or hub name; default: the pretrained encoder.")
    method: Literal["full", "lora"] = "full"
    epochs: float = Field(4, gt=0)
    max_length: int | None = Field(None, gt=0, description="Truncate texts to this many tokens (default: model max).")
    group_by_length: bool = Field(True, description="Batch texts of similar length together (less padding).")
    early_stopping_patience: int = Field(2, ge=1, description="Evaluations without improvement before stopping.")
    metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    lora: LoraSettings = LoraSettings()
    optim: OptimConfig = OptimConfig(batch_size=32, learning_rate=5e-4, warmup_steps=10)
    retry: RetryPolicy = RetryPolicy()


class FinetunedModel(BaseModel):
    uri: str
    base_model: str
    method: str
    labels: list[str]
    global_step: int
    resumed_from_step: int
    best_metric: float
    metric: str
    mlflow_run_id: str
    pretrain_run_id: str | None = None


def classification_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="macro")}


def _tokenize(batch, tok, max_length: int):
    enc = tok(batch["text"], truncation=True, max_length=max_length)
    enc["length"] = [len(ids) for ids in enc["input_ids"]]  # for length-grouped batches
    return enc


def finetune(
    cfg: FinetuneConfig,
    data: PreparedData,
    tokenizer: TokenizerArtifact,
    encoder: EncoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> FinetunedModel:
    log = reporting.logger()
    maybe_fail("finetune", ws.local_dir("faults"))
    base = cfg.base_model or (encoder.uri if encoder else None)
    if base is None:
        raise PipelineInputError("finetune.base_model is required when pretrain.enabled=false")
    key = hash_json(cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base, code_fingerprint())
    workdir = ws.local_dir("finetune", key)
    tok = load_tokenizer(tokenizer)
    try:
        model = build_classifier(str(materialize(base)) if is_remote(base) else base, data.labels)
    except OSError as e:
        raise PipelineInputError(f"finetune base model '{base}' could not be loaded: {e}") from e
    if len(tok) > model.config.vocab_size:
        raise PipelineInputError(
            f"tokenizer ({len(tok)} tokens, {tokenizer.uri}) does not match model '{base}' "
            f"({model.config.vocab_size} embeddings); use the model's own tokenizer"
        )
    if cfg.method == "lora":
        model = apply_lora(model, cfg.lora)
    max_length = min(cfg.max_length or 10**9, model.config.max_position_embeddings)

    splits = load_splits(data).map(
        _tokenize,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"tok": tok, "max_length": max_length},
        desc="tokenizing",
    )
    splits = splits.rename_column("label", "labels")
    resume, resume_step = last_checkpoint(workdir)
    args = training_arguments(
        workdir,
        cfg.optim,
        num_train_epochs=cfg.epochs,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model=cfg.metric,
        greater_is_better=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    )
    callbacks = [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    if fault := step_fault_callback("finetune", ws.local_dir("faults")):
        callbacks.append(fault)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=classification_metrics,
        callbacks=callbacks,
    )
    log.info(
        "fine-tuning (%s) %s on %s: %d train / %d validation texts%s",
        cfg.method,
        base,
        describe_device(),
        len(splits["train"]),
        len(splits["validation"]),
        f", resuming from step {resume_step}" if resume else "",
    )
    tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.base_model": base}
    with stage_run(tracking, "finetune", parent_run_id, tags) as run:
        mlflow.log_params({"method": cfg.method, "resumed_from_step": resume_step})
        trainer.train(resume_from_checkpoint=resume)
        best = trainer.evaluate()
        mlflow.log_metrics({f"best_{cfg.metric}": best[f"eval_{cfg.metric}"]}, step=trainer.state.global_step)
        final = merge_lora(trainer.model) if cfg.method == "lora" else trainer.model
        model_dir = workdir / "model"
        final.save_pretrained(str(model_dir))
        tok.save_pretrained(str(model_dir))
    uri = publish_dir(model_dir, ws.uri("finetune", key, "model"))
    result = FinetunedModel(
        uri=uri,
        base_model=base,
        method=cfg.method,
        labels=data.labels,
        global_step=trainer.state.global_step,
        resumed_from_step=resume_step,
        best_metric=best[f"eval_{cfg.metric}"],
        metric=cfg.metric,
        mlflow_run_id=run.info.run_id,
        pretrain_run_id=encoder.mlflow_run_id if encoder else None,
    )
    reporting.markdown(
        "finetune",
        f"# Fine-tuning ({cfg.method})\n\n{count_parameters(final) / 1e6:.2f}M parameters, "
        f"{result.global_step} steps; best validation {cfg.metric} {result.best_metric:.4f}\n\n"
        f"Model: `{uri}`  \nMLflow run: [{run.info.run_id}]({tracking.run_url(run.info.run_id)})\n",
    )
    return result
