"""The finetune_answers stage: a question-answering head on the checkpoint, trained with the Trainer on stride windows.

The windows and the Trainer are `features.py` and `train.py`; this stage runs them in the training skeleton (key,
lock, publish) and its MLflow run, and saves beside the weights the settings the reader is served with
(`models/span_reader.py`): window length and stride, the longest answer decoded (the 98th percentile of training
answers in tokens unless set), and, where validation holds unanswerable questions, the no-answer threshold tuned there.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import mlflow
import numpy as np
from pydantic import BaseModel, Field

from core import reporting
from core.checkpoints import local_checkpoint
from core.errors import PipelineInputError
from core.tracking import Tracking
from core.workspace import Workspace
from tasks.kinds.answers.decode import tune_null_threshold
from tasks.kinds.answers.features import WindowConfig, train_features
from tasks.kinds.answers.judging_stage import read, score, texts
from tasks.kinds.answers.splits import questions
from tasks.kinds.answers.train import TrainConfig, fine_tune, load_reader
from tasks.results.answers import AnsweringModel, PreparedQuestions
from tasks.results.classification import EncoderArtifact
from tasks.results.data import TokenizerArtifact
from tasks.training.common import TrainingJob, report_stage, training_run
from tasks.training.settings import OptimConfig, TrainingConfig
from tasks.training.skeleton import TrainingStage

STAGE = "finetune_answers"


class AnswerFinetuneConfig(TrainingConfig):
    """Fine-tune a span reader. Sized for CPU by `answer_data.max_train_questions`: COVID-QA's articles run to ~25
    windows each, so a question costs far more than a sentence does."""

    base_model: str | None = Field(
        None, description="Encoder checkpoint: a folder, a hub name or pkg:<module>; default: the pretrained encoder."
    )
    epochs: float = Field(2.0, gt=0, description="Passes over the training windows.")
    max_length: int = Field(
        384, ge=32, description="Tokens per window, question included; capped by the encoder's positions."
    )
    doc_stride: int = Field(128, ge=0, description="Tokens consecutive windows of a long context share.")
    max_answer_length: int | None = Field(
        None, gt=0, description="Longest answer decoded, in tokens; unset: the 98th percentile of training answers."
    )
    negatives_per_question: float = Field(
        0.3, ge=0, description="Answer-less windows kept per question (the rest of a long article is skipped)."
    )
    validation_questions: int = Field(
        50, ge=0, description="Validation questions read after training (F1, the no-answer threshold); 0: none."
    )
    warmup_share: float = Field(0.1, ge=0, lt=1, description="Linear warmup as a share of all steps.")
    threads: int = Field(2, ge=1, description="torch CPU threads (a shared 2-core machine by default).")
    optim: OptimConfig = OptimConfig(batch_size=16, learning_rate=1e-4)  # a fresh QA head on a small encoder


class AnswerJob(TrainingJob):
    cfg: AnswerFinetuneConfig
    data: PreparedQuestions
    base: str


class TrainedReader(BaseModel):
    windows: int
    answer_windows: int
    max_answer_tokens: int
    null_threshold: float | None
    validation_f1: float | None
    loss: float | None
    steps: int
    seconds: float
    processes: int = 1


def fit_windows(cfg: AnswerFinetuneConfig, positions: int) -> WindowConfig:
    """The windows as set, or cut to an encoder with fewer positions (a from-scratch encoder has the pretrain
    shape's `max_length`, 64 by default): stride and question then a quarter of the window each, so the context keeps
    half of it. Classification caps its `max_length` by the model the same way."""
    negatives = cfg.negatives_per_question
    if cfg.max_length <= positions:
        return WindowConfig(max_length=cfg.max_length, stride=cfg.doc_stride, negatives_per_question=negatives)
    reporting.logger().info(
        "answer_finetune.max_length=%d is longer than the encoder's %d positions: windows of %d tokens",
        cfg.max_length, positions, positions,
    )  # fmt: skip
    quarter = max(4, positions // 4)
    return WindowConfig(max_length=positions, stride=min(cfg.doc_stride, quarter), max_question_tokens=min(64, quarter),
                        negatives_per_question=negatives)  # fmt: skip


def answer_token_cap(tokenizer, train) -> int:
    """The 98th percentile of the training answers in tokens, within 30..200 (COVID-QA's answers are sentences)."""
    lengths = [len(tokenizer(a.text, add_special_tokens=False)["input_ids"]) for ex in train for a in ex.answers[:1]]
    return int(min(200, max(30, np.percentile(lengths, 98)))) if lengths else 30


def _validate(model_dir: Path, job: AnswerJob, settings) -> tuple[float | None, float | None]:
    """Validation F1 and, where validation has unanswerable questions, the no-answer threshold that maximises it."""
    from models.span_reader import SpanReader

    if not job.cfg.validation_questions:
        return None, None
    val = questions(job.data, "validation", job.cfg.validation_questions, job.cfg.optim.seed)
    reader = SpanReader.load(model_dir, threads=job.cfg.threads)
    spans = read(reader, val)
    threshold = None
    if any(ex.is_impossible for ex in val):
        threshold, _ = tune_null_threshold(val, spans, job.data.scoring)
        reader.settings = settings.model_copy(update={"null_threshold": threshold})
        reader.save_settings(model_dir)
        spans = read(reader, val)
    return score(val, texts(spans), job.data.scoring).f1, threshold


def train_reader(job: AnswerJob) -> TrainedReader:
    """Windows, the Trainer, then the settings the reader is served with saved beside its weights."""
    from models.span_reader import ReaderSettings, SpanReader

    cfg, out = job.cfg, Path(job.workdir) / "model"
    tokenizer, model = load_reader(job.base)
    train = questions(job.data, "train")
    windows = fit_windows(cfg, model.config.max_position_embeddings)
    features = train_features(tokenizer, train, windows, seed=cfg.optim.seed)
    o = cfg.optim
    train_cfg = TrainConfig(
        checkpoint=job.base, epochs=cfg.epochs, learning_rate=o.learning_rate, batch_size=o.batch_size,
        weight_decay=o.weight_decay, warmup_ratio=cfg.warmup_share, seed=o.seed, threads=cfg.threads,
    )  # fmt: skip
    model, metrics = fine_tune(model, features, train_cfg, Path(job.workdir) / "trainer")
    shutil.rmtree(Path(job.workdir) / "trainer", ignore_errors=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    cap = cfg.max_answer_length or answer_token_cap(tokenizer, train)
    settings = ReaderSettings(
        max_length=windows.max_length, stride=windows.stride, max_question_tokens=windows.max_question_tokens,
        max_answer_tokens=cap,
    )  # fmt: skip
    SpanReader(tokenizer, None, settings).save_settings(out)
    validation_f1, threshold = _validate(out, job, settings)
    return TrainedReader(
        windows=len(features["input_ids"]),
        answer_windows=sum(s > 0 for s in features["start_positions"]),
        max_answer_tokens=cap,
        null_threshold=threshold,
        validation_f1=validation_f1,
        loss=metrics.get("train_loss"),
        steps=int(math.ceil(len(features["input_ids"]) / o.batch_size) * cfg.epochs),
        seconds=float(metrics.get("train_runtime", 0.0)),
    )


def finetune_answers(
    cfg: AnswerFinetuneConfig,
    data: PreparedQuestions,
    tokenizer: TokenizerArtifact,
    encoder: EncoderArtifact | None,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> AnsweringModel:
    base = cfg.base_model or (encoder.uri if encoder else None)
    if base is None:
        raise PipelineInputError("answer_finetune.base_model is required when pretrain.enabled=false")
    run = TrainingStage(STAGE, ws, cfg.model_dump(exclude={"retry"}), data.fingerprint, tokenizer.uri, base)
    with run.locked() as resume:
        job = AnswerJob(cfg=cfg, data=data, base=local_checkpoint(base), **resume)
        tags = {"zero2one.data_fingerprint": data.fingerprint, "zero2one.base_model": base, "zero2one.task": "answers"}
        with training_run(STAGE, train_reader, job, tracking, parent_run_id, tags) as (trained, run_id):
            found = {"train_windows": trained.windows, "train_seconds": trained.seconds}
            found |= {"validation_f1": trained.validation_f1} if trained.validation_f1 is not None else {}
            mlflow.log_metrics(found | ({"train_loss": trained.loss} if trained.loss is not None else {}))
            mlflow.log_params(
                {"max_answer_tokens": trained.max_answer_tokens, "null_threshold": trained.null_threshold}
            )
        uri = run.publish("model")
    val = f"{trained.validation_f1:.4f}" if trained.validation_f1 is not None else "not read"
    report_stage(
        STAGE,
        f"# Answer fine-tuning\n\n{trained.windows} windows ({trained.answer_windows} holding the answer), "
        f"{trained.steps} steps in {trained.seconds:.0f} s; validation F1 {val}; answers up to "
        f"{trained.max_answer_tokens} tokens\n\nModel: `{uri}`  \n",
        tracking,
        run_id,
    )
    return AnsweringModel(
        uri=uri,
        base_model=base,
        method="full",
        global_step=trained.steps,
        resumed_from_step=0,  # fine_tune saves no epoch checkpoints; a retry trains again
        mlflow_run_id=run_id,
        pretrain_run_id=encoder.mlflow_run_id if encoder else None,
        max_answer_tokens=trained.max_answer_tokens,
        null_threshold=trained.null_threshold,
        validation_f1=trained.validation_f1,
        train_windows=trained.windows,
    )
