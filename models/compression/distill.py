"""Knowledge distillation into a smaller student whose layers are copied from the teacher's.

Student: the teacher with only some of its transformer blocks, taken evenly from the bottom (every other one when
halving, as DistilBERT was initialised), and optionally a narrower FFN that keeps the most important neurons
(`prune.importance`). Loss (Hinton et al. 2015): (1 - alpha) x cross-entropy on the hard labels + alpha x T^2 x
KL(teacher || student) on logits softened by the temperature T. The teacher's logits are computed once per text and
travel in the dataset as a `teacher_logits` column, so training never runs the teacher. Rows labelled -100 are
unlabelled distillation data: only the KL term sees them. Hidden-state transfer (TinyBERT/MiniLM) is not here: it
was not measured to help on our data (docs/compression.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

from models.compression.prune import encoder_layers, slice_ffn, top_k

IGNORE = -100  # label of an unlabelled distillation text


def select_layers(total: int, keep: int) -> list[int]:
    """Teacher blocks the student starts from: evenly spaced from the bottom (6 -> 3: 0, 2, 4; 6 -> 2: 0, 3)."""
    if not 0 < keep <= total:
        raise ValueError(f"student layers must be between 1 and the teacher's {total}, got {keep}")
    return [i * total // keep for i in range(keep)]


def make_student(
    teacher: PreTrainedModel, layers: int, ffn_size: int | None = None, ffn_scores: torch.Tensor | None = None
) -> tuple[PreTrainedModel, list[int]]:
    """A copy of `teacher` with `layers` of its blocks (and `ffn_size` FFN neurons each); returns (student, blocks).

    Without `ffn_scores` the narrower FFN keeps the neurons with the largest weight norms.
    """
    student = copy.deepcopy(teacher)
    chosen = select_layers(len(encoder_layers(teacher)), layers)
    blocks = encoder_layers(student)
    kept = nn.ModuleList([blocks[i] for i in chosen])
    student.base_model.encoder.layer = kept
    student.config.num_hidden_layers = layers
    if ffn_size is not None and ffn_size < student.config.intermediate_size:
        for i, block in zip(chosen, kept, strict=True):
            if ffn_scores is not None:
                scores = ffn_scores[i]
            else:
                scores = block.intermediate.dense.weight.norm(dim=1) * block.output.dense.weight.norm(dim=0)
            slice_ffn(block, top_k(scores[: block.output.dense.in_features], ffn_size))
        student.config.intermediate_size = ffn_size
    for j, block in enumerate(kept):  # a block's index is used by caches only, but keep it true
        if hasattr(block.attention.self, "layer_idx"):
            block.attention.self.layer_idx = j
    return student, chosen


@torch.inference_mode()
def teacher_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch: int = 64
) -> np.ndarray:
    """The teacher's logits for `texts` (computed once, then cached by the caller), in length-sorted batches."""
    model.eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(texts), batch):
        idx = order[start : start + batch]
        enc = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        out[idx] = model(**enc).logits.float().numpy()
    return out


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None, temperature: float, alpha: float
) -> torch.Tensor:
    """(1 - alpha) CE(hard labels, rows not -100) + alpha T^2 KL(softmax(teacher/T) || softmax(student/T))."""
    t = temperature
    log_s, log_t = F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1)
    soft = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * (t * t)
    if labels is None or alpha == 1.0 or bool((labels == IGNORE).all()):
        return soft
    hard = F.cross_entropy(student, labels, ignore_index=IGNORE)
    return (1 - alpha) * hard + alpha * soft


class DistillationTrainer(Trainer):
    """The Trainer with the distillation loss; batches carry the cached `teacher_logits` (absent in evaluation)."""

    def __init__(self, *args, temperature: float = 2.0, alpha: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.alpha = alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        teacher = inputs.pop("teacher_logits", None)
        labels = inputs.pop("labels", None)
        inputs.pop("length", None)  # only for length-grouped batches
        outputs = model(**inputs)
        if teacher is None:  # evaluation: plain cross-entropy on the labels
            loss = F.cross_entropy(outputs.logits, labels)
        else:
            loss = distillation_loss(
                outputs.logits, teacher.to(outputs.logits.dtype), labels, self.temperature, self.alpha
            )
        return (loss, outputs) if return_outputs else loss
