"""The card's "what serves" sentence compares the served graph with PyTorch on the same rows.

Found on the ner.yaml preset (2026-12-06): the optimize stage scored the fp32 graph on the first 300 of 1,287 WNUT-17
test sentences (entity F1 0.5301, PyTorch on those 300: 0.5301), and the card printed "entity F1 0.5301 (PyTorch
0.4270)" - PyTorch's number over all 1,287 - so the graph looked 10 points better than the model it copies.
"""

from __future__ import annotations

from types import SimpleNamespace

from core.registry_names import SERVED_ENTITY_F1, SERVED_PYTORCH_SAME_ROWS, SERVED_ROWS, SERVED_RUNTIME
from tasks.kinds.entities.card import served_numbers
from tasks.registry.code_pyfunc import served_score_tags
from tasks.registry.versioning import served_tags
from tasks.results.generation import GenerationParity


def _tagger(variant: str, onnx_file: str | None) -> SimpleNamespace:
    return SimpleNamespace(variant=variant, onnx_file=onnx_file, f1={"pytorch": 0.5301, "fp32": 0.5301}, eval_size=300)


def test_a_served_graphs_score_stands_beside_pytorchs_on_the_same_rows() -> None:
    tags = served_score_tags(_tagger("fp32", "model.onnx"), pytorch_f1=0.4270, served_tag=SERVED_ENTITY_F1)
    assert tags == {
        SERVED_RUNTIME: "onnx-fp32",
        SERVED_ENTITY_F1: "0.5301",
        SERVED_PYTORCH_SAME_ROWS: "0.5301",
        SERVED_ROWS: "300",
    }
    report = SimpleNamespace(model=SimpleNamespace(f1=0.4270))
    line = served_numbers(tags, report)
    assert "entity F1 0.5301" in line and "(300 test rows)" in line
    assert "PyTorch scores 0.5301 on those same rows" in line
    assert "0.4270 on the whole test split" in line  # the evaluation's number is named for what it is


def test_pytorch_serving_is_scored_on_the_evaluations_own_rows() -> None:
    tags = served_score_tags(_tagger("pytorch", None), pytorch_f1=0.4270, served_tag=SERVED_ENTITY_F1)
    assert tags == {SERVED_RUNTIME: "pytorch", SERVED_ENTITY_F1: "0.4270"}
    assert "on the same test rows" in served_numbers(tags, SimpleNamespace(model=SimpleNamespace(f1=0.4270)))


def test_a_generators_graph_carries_pytorchs_chrf_on_its_parity_chats() -> None:
    from core.registry_names import SERVED_CHRF, SERVED_EXACT_MATCH

    parity = GenerationParity(
        agreement=0.99, tokens=500, exact_match=0.0, chrf=25.09, exact_match_drop=0.0, chrf_drop=0.32, passed=True
    )
    optimized = SimpleNamespace(variant="int8", parity={"int8": parity}, eval_size=60)
    tags = served_tags(optimized, {SERVED_CHRF: 22.59, SERVED_EXACT_MATCH: 0.0})
    assert tags[SERVED_CHRF] == "25.0900" and tags[SERVED_PYTORCH_SAME_ROWS] == "25.4100"
    assert tags[SERVED_ROWS] == "60"
