"""Alpaca rows as they come (`instruction`, optional `input`, `output`) become one user turn and the answer, beside
prompt/response and chat messages; generated answers are scored with ROUGE-L as well as chrF (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import PipelineInputError
from core.workspace import Workspace
from tasks.data.loaders import load_splits
from tasks.judging.scoring import score_answers
from tasks.kinds.generation.data import InstructionDataConfig, prepare_instructions

SHARED = Path("/work/shared/data/instructions/alpaca_sample.jsonl")


def _alpaca(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n: int) -> list[dict]:
    return [
        {"instruction": f"Translate number {i}.", "input": f"value {i}" if i % 2 else "", "output": f"Number {i}."}
        for i in range(n)
    ]


def test_alpaca_rows_become_one_user_turn_and_the_answer(tmp_path: Path) -> None:
    path = _alpaca(tmp_path / "alpaca.jsonl", _rows(40))
    cfg = InstructionDataConfig(source=str(path), corpus=None)
    data = prepare_instructions(cfg, Workspace(root=str(tmp_path / "ws")))
    chats = [m for split in load_splits(data).values() for m in split["messages"]]
    assert len(chats) == 40 and all([m["role"] for m in c] == ["user", "assistant"] for c in chats)
    by_answer = {c[1]["content"]: c[0]["content"] for c in chats}
    assert by_answer["Number 3."] == "Translate number 3.\n\nvalue 3"  # instruction and input, a blank line apart
    assert by_answer["Number 4."] == "Translate number 4."  # no input: the instruction alone


def test_an_alpaca_row_without_output_is_named(tmp_path: Path) -> None:
    rows = _rows(20)
    rows[6]["output"] = " "
    path = _alpaca(tmp_path / "alpaca.jsonl", rows)
    with pytest.raises(PipelineInputError, match=r"alpaca\.jsonl, line 7, field 'output': empty response"):
        prepare_instructions(InstructionDataConfig(source=str(path), corpus=None), Workspace(root=str(tmp_path)))


@pytest.mark.skipif(not SHARED.exists(), reason="the shared Alpaca sample is not on this machine")
def test_the_shared_alpaca_sample_is_read_as_it_comes(tmp_path: Path) -> None:
    data = prepare_instructions(
        InstructionDataConfig(source=str(SHARED), corpus=None, on_invalid="drop"), Workspace(root=str(tmp_path))
    )
    assert sum(data.sizes.values()) > 3900


def test_rouge_l_scores_word_overlap() -> None:
    same = score_answers(["The capital of France is Paris."], ["The capital of France is Paris."])
    assert same.rouge_l == pytest.approx(100.0)
    half = score_answers(["Paris is the capital."], ["The capital of France is Paris."])
    assert 0 < half.rouge_l < 100 and score_answers(["nothing alike"], ["Paris"]).rouge_l == 0
