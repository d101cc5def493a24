"""Several students for one teacher: trained smallest first, the first that keeps the floor serves.

A larger student is trained only when every smaller one was refused, so a list whose first candidate passes costs
one training, as a single policy does. Each candidate trains in its own folder (`workdir/<name>`, resumed and
recorded like `compress`); the teacher's logits are cached once for all of them (`workdir/logits`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import datasets
from pydantic import BaseModel

from models.compression.policy import CompressionPolicy
from tasks.compress.result import CompressResult
from tasks.compress.stage import compress


class Tried(BaseModel):
    """One candidate: its name, its estimated size and, when it was trained, its result."""

    name: str
    policy: CompressionPolicy
    block_parameters: int  # estimated parameters of its transformer blocks (the ordering key)
    result: CompressResult | None = None  # None: not trained, a smaller candidate passed first

    @property
    def failed_rule(self) -> str | None:
        """Which rule refused it: `floor` (kept < quality_floor of the teacher) or `baseline` (did not beat TF-IDF)."""
        r = self.result
        if r is None or r.passed:
            return None
        return "floor" if r.student_metric < self.policy.quality_floor * r.teacher_metric else "baseline"

    def line(self) -> str:
        """`distill-2L-ffn768 (5.9M parameters): refused by the floor rule: student 0.9 < floor ...`."""
        if self.result is None:
            return f"{self.name}: not trained (a smaller candidate passed)"
        size = f"{self.result.student_parameters / 1e6:.1f}M parameters"
        if self.result.passed:
            return f"{self.name} ({size}): passed, {self.result.reason}"
        return f"{self.name} ({size}): refused by the {self.failed_rule} rule: {self.result.reason}"


class Choice(BaseModel):
    """The candidates in the order they were tried, and the one that serves (None: the teacher goes on)."""

    tried: list[Tried]
    chosen: Tried | None

    @property
    def record(self) -> CompressResult:
        """The chosen student's result; when all were refused, the trained one closest to the teacher."""
        if self.chosen is not None:
            return self.chosen.result
        trained = [t.result for t in self.tried if t.result is not None]
        return max(trained, key=lambda r: r.student_metric)

    def story(self) -> str:
        """Which candidates were tried, why each was refused, and why the chosen one serves: for the log and card."""
        lines = "; ".join(t.line() for t in self.tried)
        count = f"{len(self.tried)} candidate{'s' if len(self.tried) > 1 else ''}, smallest first"
        if self.chosen is None:
            return f"no student kept the floor ({count}: {lines}); the teacher serves"
        why = "the smallest that passed" if len(self.tried) > 1 else "it passed"
        return f"{self.chosen.name} serves, {why} ({count}: {lines})"


def shape_name(policy: CompressionPolicy, teacher: dict | None = None) -> str:
    """A candidate's folder and display name from its shape, e.g. `distill-2L-ffn768`, `prune-h6-n768`; the FFN
    width only where it narrows the teacher's (`teacher`: its config.json)."""
    parts = [policy.method.replace("+", "-")]
    narrower = policy.ffn_size and policy.ffn_size < (teacher or {}).get("intermediate_size", policy.ffn_size + 1)
    if "distill" in policy.method:
        parts += [f"{policy.student_layers}L"] + ([f"ffn{policy.ffn_size}"] if narrower else [])
    if "prune" in policy.method:
        parts += [f"h{policy.heads_kept}"] if policy.heads_kept else []
        parts += [f"n{policy.neurons_kept}"] if policy.neurons_kept else []
    return "-".join(parts)


def block_parameters(teacher: dict, policy: CompressionPolicy) -> int:
    """Parameters of the student's transformer blocks, from the teacher's config.json and the policy.

    Written out because the ordering must be known before any student is built (building one scores FFN neurons on
    data); the embeddings are left out, as they are the same for every candidate of a teacher.
    """
    hidden, heads = teacher["hidden_size"], teacher["num_attention_heads"]
    layers, ffn = teacher["num_hidden_layers"], teacher["intermediate_size"]
    if "distill" in policy.method:
        layers = min(layers, policy.student_layers)
        ffn = min(ffn, policy.ffn_size or ffn)
    if "prune" in policy.method:
        heads = min(heads, policy.heads_kept or heads)
        ffn = min(ffn, policy.neurons_kept or ffn)
    width = heads * (teacher["hidden_size"] // teacher["num_attention_heads"])
    attention = 3 * (hidden * width + width) + width * hidden + hidden + 2 * hidden  # q, k, v; output; LayerNorm
    feed_forward = hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden  # in, out; LayerNorm
    return layers * (attention + feed_forward)


def in_size_order(teacher_dir: Path, policies: Sequence[CompressionPolicy]) -> list[Tried]:
    """The candidates, smallest first (a tie keeps the configured order)."""
    config = json.loads((teacher_dir / "config.json").read_text())
    tried = [
        Tried(name=shape_name(p, config), policy=p, block_parameters=block_parameters(config, p)) for p in policies
    ]
    return sorted(tried, key=lambda t: t.block_parameters)  # stable


def compress_candidates(
    teacher_dir: str | Path,
    splits: datasets.DatasetDict,
    workdir: str | Path,
    policies: Sequence[CompressionPolicy],
    baseline_metric: float | None = None,
    callbacks: Sequence = (),
    log=None,
) -> Choice:
    """Train the candidates smallest first until one keeps the floor (and beats `baseline_metric` when given).

    `log(tried)` is called after each candidate (the stage's logger); `callbacks` go to every candidate's Trainer.
    """
    teacher_dir, workdir = Path(teacher_dir), Path(workdir)
    ordered = in_size_order(teacher_dir, policies)
    for candidate in ordered:
        candidate.result = compress(
            teacher_dir,
            splits,
            workdir / candidate.name,
            candidate.policy,
            baseline_metric=baseline_metric,
            logits_dir=workdir / "logits",
            callbacks=callbacks,
        )
        if log is not None:
            log(candidate)
        if candidate.result.passed:
            return Choice(tried=ordered, chosen=candidate)
    return Choice(tried=ordered, chosen=None)
