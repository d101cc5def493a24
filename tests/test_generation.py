"""The generation track's stages: demo data, validation messages, the answer-only loss mask, packing, the chat
template, and a tiny run of the stage functions in order (real MLflow, no Prefect needed: stages are plain
functions) ending in a registered pyfunc that answers prompts and chats from `@champion`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import mlflow
import pandas as pd
import pytest
import yaml
from transformers import AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as TrlCollator

from core.errors import PipelineInputError
from core.orchestration import InjectedFault
from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from tasks.kinds.generation.chats import IGNORE, encode_chat, fit_to_context
from tasks.kinds.generation.data import InstructionDataConfig, prepare_instructions
from tasks.kinds.generation.demo import write_demo_instructions
from tasks.kinds.generation.evaluate import _verdict, evaluate_generation
from tasks.kinds.generation.gate import _retrieval_rule
from tasks.kinds.generation.pretrain import CausalPretrainConfig, causal_pretrain, pack
from tasks.kinds.generation.registry import log_generator
from tasks.kinds.generation.sft import sft
from tasks.kinds.generation.sft_config import SftConfig
from tasks.kinds.generation.tokenizer import (
    CHAT_TEMPLATE,
    CausalTokenizerConfig,
    train_byte_bpe,
    train_causal_tokenizer,
)
from tasks.results import GenerationScores
from tasks.stage_configs import EvaluateGenerationConfig, GateConfig, QualityBar
from tasks.training.common import OptimConfig

ROOT = Path(__file__).resolve().parent.parent
CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Is the 价格 good? 👍🏽"},
    {"role": "assistant", "content": "Yes."},
    {"role": "user", "content": "State the verdict."},
    {"role": "assistant", "content": "Verdict: positive."},
]


@pytest.fixture(scope="module")
def tok():
    texts = ["The battery of this phone is great.", "Verdict: positive. Aspects: battery (positive)."] * 20
    return train_byte_bpe(texts, vocab_size=400)


def _write(folder: Path, name: str, rows: list[dict] | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(rows, bytes):
        path.write_bytes(rows)
    elif name.endswith(".csv"):
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"prompt": f"question {i}", "response": f"answer {i}"} for i in range(start, start + n)]


# ---------------------------------------------------------------- demo data and validation


def test_demo_instructions_deterministic_and_held_out(tmp_path: Path) -> None:
    sizes = {"train": 200, "validation": 20, "test": 20}
    a = write_demo_instructions(tmp_path / "a", sizes, n_corpus=300, n_shifted=20, seed=3)
    b = write_demo_instructions(tmp_path / "b", sizes, n_corpus=300, n_shifted=20, seed=3)
    for name in ("train.jsonl", "test.jsonl"):
        assert (a.instructions / name).read_bytes() == (b.instructions / name).read_bytes()
    assert a.corpus.read_bytes() == b.corpus.read_bytes()
    read = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    train, test = read(a.instructions / "train.jsonl"), read(a.instructions / "test.jsonl")
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    reviews = {r["prompt"].split("\nReview: ")[1] for r in test}
    assert not reviews & set(a.corpus.read_text().splitlines())
    assert any(r["response"].startswith("Verdict: ") for r in test) and any(
        r["response"].startswith("The ") for r in test
    )


BAD_CASES = {
    "empty response": (
        "data.csv",
        [*_rows(12), {"prompt": "why?", "response": ""}],
        r"data\.csv, line 14, field 'response': empty response \(value ''\)",
    ),
    "unknown role": (
        "chats.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}] * 3
        + [{"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
        r"chats\.jsonl, line 4, field 'messages\[0\]\.role': unknown role .* \(value 'human'\)",
    ),
    "chat not ending with the answer": (
        "chats.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}]}],
        r"line 1, field 'messages\[0\]\.role': last message is not the assistant's answer",
    ),
    "not UTF-8": ("data.csv", b"prompt,response\nok,fine\ncaf\xe9,bad\n", r"data\.csv: undecodable bytes at line 3"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_file_line_field_and_value(tmp_path: Path, case: str) -> None:
    name, rows, message = BAD_CASES[case]
    path = _write(tmp_path / "in", name, rows)
    cfg = InstructionDataConfig(source=str(path), corpus=None)
    with pytest.raises(PipelineInputError, match=message):
        prepare_instructions(cfg, Workspace(root=str(tmp_path / "ws")))


def test_duplicates_across_splits_error_or_drop(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _write(folder, "train.jsonl", _rows(20))
    _write(folder, "validation.jsonl", _rows(5, start=100))
    _write(folder, "test.jsonl", [*_rows(5, start=200), *_rows(2, start=3)])  # two prompts seen in training
    ws = Workspace(root=str(tmp_path / "ws"))
    message = r"test\.jsonl, line 6, field 'prompt': the prompt 'question 3' \(test\) is also in .*train\.jsonl, line 4"
    with pytest.raises(PipelineInputError, match=message):
        prepare_instructions(InstructionDataConfig(source=str(folder), corpus=None), ws)
    data = prepare_instructions(InstructionDataConfig(source=str(folder), corpus=None, on_invalid="drop"), ws)
    assert data.sizes == {"train": 20, "validation": 5, "test": 5}
    assert data.dropped == {"duplicated across splits (test)": 2}


def test_too_long_policy_error_truncate_drop(tok) -> None:
    chats = [[{"role": "user", "content": "short"}, {"role": "assistant", "content": "ok"}]] * 3
    chats += [[{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]]
    split = datasets.Dataset.from_dict({"messages": chats, "_file": ["f.jsonl"] * 4, "_line": [1, 2, 3, 4]})
    n_tokens = lambda m: len(encode_chat(tok, m)["input_ids"])  # noqa: E731
    with pytest.raises(PipelineInputError, match=r"f\.jsonl, line 4, field 'messages': \d+ tokens, longer than .* 64"):
        fit_to_context(split, n_tokens, 64, "error", "train split")
    kept, too_long = fit_to_context(split, n_tokens, 64, "drop", "train split")
    assert (len(kept), too_long) == (3, 1)
    kept, too_long = fit_to_context(split, n_tokens, 64, "truncate", "train split")
    assert (len(kept), too_long) == (4, 1)
    assert len(encode_chat(tok, kept[3]["messages"], 64)["input_ids"]) == 64


# ---------------------------------------------------------------- tokenizer, mask, packing


def test_chat_template_round_trip(tok, tmp_path: Path) -> None:
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.chat_template == CHAT_TEMPLATE and loaded.unk_token is None
    text = loaded.apply_chat_template(CHAT, tokenize=False)
    assert text == (
        "<|system|>\nAnswer briefly.<|end|><|user|>\nIs the 价格 good? 👍🏽<|end|><|assistant|>\nYes.<|end|>"
        "<|user|>\nState the verdict.<|end|><|assistant|>\nVerdict: positive.<|end|>"
    )
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text  # byte-level: Chinese and emoji survive, nothing is unknown
    assert loaded.convert_ids_to_tokens(ids[:1]) == ["<|system|>"] and ids[-1] == loaded.eos_token_id
    prompt = loaded.apply_chat_template(CHAT[:-1], tokenize=False, add_generation_prompt=True)
    assert text == prompt + "Verdict: positive.<|end|>"


def test_loss_only_on_the_last_answer(tok) -> None:
    enc = encode_chat(tok, CHAT)
    answer = [t for t, label in zip(enc["input_ids"], enc["labels"], strict=True) if label != IGNORE]
    assert tok.decode(answer) == "Verdict: positive.<|end|>"  # earlier turns, the "Yes." included, are context
    first = next(i for i, label in enumerate(enc["labels"]) if label != IGNORE)
    assert all(label == IGNORE for label in enc["labels"][:first])
    assert enc["labels"][first:] == enc["input_ids"][first:]
    prompt = tok.apply_chat_template(CHAT[:-1], tokenize=False, add_generation_prompt=True)
    assert tok.decode(enc["input_ids"][:first]) == prompt
    # The padding-free batch SFT trains on: chats end to end, no pad token, the mask kept.
    short = encode_chat(tok, CHAT[-2:])
    batch = TrlCollator(pad_token_id=tok.pad_token_id, padding_free=True)([enc, short])
    assert batch["input_ids"].shape == (1, len(enc["input_ids"]) + len(short["input_ids"]))
    assert tok.pad_token_id not in batch["input_ids"]
    assert batch["labels"][0].tolist() == [IGNORE] + enc["labels"][1:] + [IGNORE] + short["labels"][1:]
    assert batch["position_ids"][0].tolist() == [*range(len(enc["input_ids"])), *range(len(short["input_ids"]))]


def test_packing_leaves_no_padding(tok) -> None:
    from transformers import DataCollatorForLanguageModeling

    texts = [f"The battery of phone number {i} is great." * (1 + i % 3) for i in range(30)]
    blocks = pack({"text": texts}, tok, block_size=16)["input_ids"]
    assert blocks and all(len(b) == 16 for b in blocks)
    stream = [t for text in texts for t in tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    assert sum(blocks, []) == stream[: len(blocks) * 16]  # nothing reordered or lost but the last partial block
    batch = DataCollatorForLanguageModeling(tok, mlm=False)([{"input_ids": b} for b in blocks[:4]])
    assert tok.pad_token_id not in batch["input_ids"] and (batch["labels"] == batch["input_ids"]).all()


def test_lora_adapts_attention_only_and_merges_to_a_plain_decoder(tok) -> None:
    import torch

    from models.decoder import DecoderShape, build_causal_lm
    from models.lora import merge_lora
    from tasks.kinds.generation.sft import _lora

    model = build_causal_lm(DecoderShape(num_layers=2), len(tok), tok.pad_token_id, tok.eos_token_id)
    peft_model = _lora(model, SftConfig().lora)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n and "self_attn" in n for n in trainable)
    merged = merge_lora(peft_model)
    assert type(merged).__name__ == "LlamaForCausalLM" and not any("lora_" in n for n, _ in merged.named_parameters())
    ids = torch.tensor([[1, 5, 7, 9]])
    assert merged(input_ids=ids).logits.shape == (1, 4, len(tok))


@pytest.mark.parametrize("preset", ["tiny-generation.yaml", "base-generation.yaml"])
def test_preset_validates(preset: str) -> None:
    raw = yaml.safe_load((ROOT / "configs" / preset).read_text())
    assert raw["task"] == "generation"
    InstructionDataConfig(**raw["generation_data"])
    CausalTokenizerConfig(**raw["generation_tokenizer"])
    pretrain = CausalPretrainConfig(**raw["causal_pretrain"])
    SftConfig(**raw["sft"])
    EvaluateGenerationConfig(**raw["evaluate_generation"])
    assert pretrain.block_size <= pretrain.shape.max_length


def test_the_retrieval_rule_switches_off_for_generators_only_with_a_reason() -> None:
    """gate.baseline_rule=false (with its reason) turns the retrieval rule off in the gate and in the evaluation's
    verdict alike, as it does the TF-IDF rule for classifiers; the pre-SFT baseline stays a rule."""
    scores = {
        "model": GenerationScores(exact_match=0.1, chrf=55.4),  # measured at test sizes: below retrieval
        "retrieval": GenerationScores(exact_match=0.1, chrf=59.2),
        "before_sft": GenerationScores(exact_match=0.0, chrf=60.0),
    }
    ev = EvaluateGenerationConfig()
    assert [r.split(" does not beat the ")[1].split(" ")[0] for r in _verdict(scores, ev, QualityBar())] == [
        "retrieval",
        "before_sft",
    ]
    with pytest.raises(ValueError, match="gate.baseline_rule_off_reason"):
        GateConfig(baseline_rule=False)
    off = GateConfig(baseline_rule=False, baseline_rule_off_reason="test: about promotion, not quality")
    assert _verdict(scores, ev, off.quality()) == ["chrF 55.40 does not beat the before_sft baseline (60.00)"]
    rule = _retrieval_rule(off, "chrF", 55.4, 59.2, 100.0)
    assert rule.passed and rule.value == "off" and "test: about promotion, not quality" in rule.reason
    assert not _retrieval_rule(GateConfig(), "chrF", 55.4, 59.2, 100.0).passed


# ---------------------------------------------------------------- the stages in order, tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Data -> tokenizer -> pretraining (killed after a checkpoint, then resumed) -> SFT -> evaluation."""
    import os

    ws = Workspace(root=str(tmp_path_factory.mktemp("gen") / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(experiment="generation-test"), ws)
    data = prepare_instructions(InstructionDataConfig(max_rows=480), ws)
    tokenizer = train_causal_tokenizer(CausalTokenizerConfig(), data, ws)
    pre_cfg = CausalPretrainConfig(
        block_size=64, max_steps=40, save_steps=20, optim=OptimConfig(batch_size=8, learning_rate=3e-3, warmup_steps=5)
    )
    os.environ["ZERO2ONE_FAULTS"] = "causal_pretrain@step=20"
    try:
        with pytest.raises(InjectedFault):
            causal_pretrain(pre_cfg, data, tokenizer, tracking, ws)
        decoder = causal_pretrain(pre_cfg, data, tokenizer, tracking, ws)  # the retry
    finally:
        del os.environ["ZERO2ONE_FAULTS"]
    sft_cfg = SftConfig(epochs=2, optim=OptimConfig(batch_size=16, learning_rate=3e-3, warmup_steps=10))
    model = sft(sft_cfg, data, tokenizer, decoder, tracking, ws)
    report = evaluate_generation(EvaluateGenerationConfig(max_prompts=40, max_new_tokens=32), data, model, tracking, ws)
    return data, decoder, model, report, tracking


def test_pretraining_resumes_and_sft_beats_the_model_before_it(trained) -> None:
    data, decoder, model, report, _ = trained
    assert decoder.resumed_from_step == 20 and decoder.global_step == 40
    # This attempt's tokens over its own training time: 20 steps after the resume, 8 blocks of 64 tokens each.
    assert decoder.tokens_per_second == pytest.approx(20 * 8 * 64 / decoder.train_seconds)
    assert model.too_long == 0 and model.global_step == 60  # 480 chats / 16, 2 epochs
    print("\n" + json.dumps(report.model_dump(exclude={"samples"}), indent=1))
    assert report.before_sft is not None and report.test_size == 40
    assert report.model.chrf > report.before_sft.chrf + 10
    assert report.model.perplexity < report.before_sft.perplexity
    assert set(report.samples[0]) == {"prompt", "reference", "model", "retrieval", "before_sft"}


def test_registered_generator_answers_prompts_and_chats(trained) -> None:
    _, _, model, _, tracking = trained
    tracking.activate()
    with mlflow.start_run():
        info = log_generator(model.uri, ["State the verdict and the aspects of this review.\nReview: Great phone."])
    client = tracking.client()
    version = mlflow.register_model(info.model_uri, "generator-test")
    client.set_registered_model_alias("generator-test", "champion", version.version)
    pyfunc = mlflow.pyfunc.load_model("models:/generator-test@champion")
    prompt = "State the verdict and the aspects of this review.\nReview: The screen of this phone is great."
    product = "Which product is this review about?\nReview: The battery of this laptop is awful."
    greedy = pyfunc.predict(pd.DataFrame({"prompt": [prompt, product]}))
    assert list(greedy.columns) == ["response"] and len(greedy) == 2
    # Each answer takes the form its task's references have (the demo's two tasks), not one form for both: the
    # registered model is the instruction-tuned one, reached through the chat template (checked at the fixture's
    # seed only; SFT's chrF lead over the model before it, asserted above, is the margin this rests on).
    answers = greedy["response"].tolist()
    assert answers[0].startswith("Verdict: ") and answers[1].startswith("The "), answers
    chat = pd.DataFrame({"messages": [[{"role": "user", "content": prompt}]]})
    assert pyfunc.predict(chat)["response"][0] == greedy["response"][0]  # a prompt is a one-turn chat
    params = {"temperature": 1.0, "top_p": 0.9, "seed": 7, "max_new_tokens": 8}
    a, b = (pyfunc.predict(chat, params=params)["response"][0] for _ in range(2))
    assert a == b  # same seed, same sample
