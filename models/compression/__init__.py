"""Compression of encoder classifiers: distillation into fewer layers, structured pruning, vocabulary trimming.

`policy` (what to do and the quality floor), `distill` (student from the teacher's layers, the distillation loss and
Trainer), `prune` (gradient importance of heads and FFN neurons, real removal), `vocab` (embeddings of used tokens).
The stage that runs them on prepared data is `tasks/compress/`.
"""

from models.compression.distill import (
    DistillationTrainer,
    distillation_loss,
    make_student,
    select_layers,
    teacher_logits,
)
from models.compression.policy import CompressionPolicy, Verdict, judge
from models.compression.prune import importance, load_compressed, prune
from models.compression.vocab import trim_vocabulary

__all__ = [
    "CompressionPolicy",
    "DistillationTrainer",
    "Verdict",
    "distillation_loss",
    "importance",
    "judge",
    "load_compressed",
    "make_student",
    "prune",
    "select_layers",
    "teacher_logits",
    "trim_vocabulary",
]
