"""The optimize_entities stage: the tagger as fused fp32, dynamic int8 and int8-weight ONNX graphs, gated on parity.

A graph serves only if it tags the parity sentences (the test split, capped) as PyTorch does on at least
`min_agreement` of the entity words; dynamic int8 is tried first (smallest, fastest), then, where `int8_weights`
asks, int8 weights (`models/int8_weights.py`), then fp32; none: PyTorch serves and the gate's parity rule says why.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from pydantic import BaseModel, ConfigDict, Field

from core import reporting
from core.fingerprint import code_fingerprint, hash_json
from core.retry import RetryPolicy
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from tasks.kinds.entities.judging import score
from tasks.kinds.entities.onnx_int8 import agreement, export_token_classifier
from tasks.kinds.entities.splits import sentences
from tasks.results.entities import OptimizedTagger, PreparedEntities, TaggedModel


class EntityOptimizeConfig(BaseModel):
    """Which graphs to build and how close to PyTorch they must tag."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_agreement: float = Field(
        0.99, gt=0, le=1, description="Share of entity words (either side not O) a graph must tag as PyTorch does."
    )
    max_sentences: int = Field(300, gt=0, description="Test sentences the parity check tags.")
    int8_weights: bool = Field(
        False,
        description="Also try int8 weights with fp32 arithmetic, before fp32: 25% smaller than fp32, tags 99.2% of "
        "WNUT-17's entity words as PyTorch does (dynamic int8: 90%), but runs slower than fp32 (docs/entities.md).",
    )
    retry: RetryPolicy = RetryPolicy(retries=1)


def optimize_entities(
    cfg: EntityOptimizeConfig,
    data: PreparedEntities,
    model: TaggedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
) -> OptimizedTagger:
    from models.token_classifier import Tagger

    key = hash_json(cfg.model_dump(exclude={"retry"}), model.uri, code_fingerprint())
    out, model_dir = ws.local_dir("optimize_entities", key), materialize(model.uri)
    files = export_token_classifier(model_dir, out / "onnx", int8_weights=cfg.int8_weights)
    test = sentences(data, "test")[: cfg.max_sentences]
    words, gold = [s.words for s in test], [s.tags for s in test]
    graphs = files.graphs()
    taggers = {"pytorch": Tagger.load(model_dir)} | {v: Tagger.load(model_dir, path) for v, path in graphs.items()}
    tagged = {v: [tags for tags, _ in t.tag(words)] for v, t in taggers.items()}  # each tagger once
    # Gated on the words either side tags as an entity: ~5% of WNUT-17's words, so all-word agreement of 99.7% still
    # let per-tensor int8 lose 2.3 points of entity F1 (docs/entities.md).
    agree = {v: agreement(tagged["pytorch"], tagged[v])["entity_tokens"] for v in taggers if v != "pytorch"}
    f1 = {v: score(gold, tags).f1 for v, tags in tagged.items()}
    chosen = next((v for v in graphs if agree[v] >= cfg.min_agreement), "pytorch")
    reasons = [
        f"{v}: {agree[v]:.4f} of words agree < {cfg.min_agreement}" for v in agree if agree[v] < cfg.min_agreement
    ]
    uri = publish_dir(out / "onnx", ws.uri("optimize_entities", key, "onnx"))
    with stage_run(tracking, "optimize_entities", parent_run_id, {"zero2one.task": "entities"}) as run:
        mlflow.log_metrics({f"agreement_{v}": a for v, a in agree.items()} | {f"f1_{v}": x for v, x in f1.items()})
    result = OptimizedTagger(
        uri=uri,
        onnx_file=Path(graphs[chosen]).name if chosen != "pytorch" else None,
        variant=chosen,
        passed=chosen != "pytorch",
        verdict=f"{chosen} serves" + (f" ({agree[chosen]:.4f} of entity words agree)" if chosen != "pytorch" else ""),
        reasons=reasons,
        agreement=agree,
        f1=f1,
        sizes_mb={v: round(Path(path).stat().st_size / 2**20, 1) for v, path in graphs.items()},
        eval_size=len(test),
        mlflow_run_id=run.info.run_id,
    )
    rows = [{"graph": v, "agreement": agree.get(v, 1.0), "entity_f1": round(f1[v], 4)} for v in taggers]
    reporting.markdown(
        "optimize-entities", f"# ONNX graphs of the tagger\n\n{reporting.md_table(rows)}\n\n{result.verdict}"
    )
    return result
