"""Training throughput of the generation track, side by side in one run (the tiny-generation preset's shapes).

1. Causal pretraining: tokens/s of the training loop inside our `causal_pretrain` task (MLflow logging,
   checkpoints, fault hooks included) vs a plain Trainer script on the same model, packed corpus, batch and
   steps, as transformers' `run_clm.py` would train it (target >= 1.0: the pipeline adds nothing to the hot loop).
   Beside it, what packing buys: real (non-pad) tokens/s vs the same Trainer on one text per row, padded to the
   longest in the batch.
2. Instruction tuning: chats/s of our `sft` task with padding-free batches and with length-grouped batches vs the
   same task padding every batch to its longest chat (`sft.batching: pad`), same model, data, epochs
   (target >= 1.5).

Every comparison runs its sides once per repeat, the order rotated each repeat (`bench/_common.alternating_rounds`:
no side is always first), and reports the median of the per-repeat ratios with each repeat's value.

    python bench/generation_training.py [--steps 40] [--epochs 1] [--repeats 2] [--set KEY=VALUE ...]

On chats of real lengths, e.g. the SMS Spam Collection as "message -> class" (lengths 2-900 characters):
    --set generation_data.source=../shared/data/sms_spam.csv --set generation_data.prompt_column=message
    --set generation_data.response_column=class --set generation_data.corpus=null
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH, alternating_rounds, load_text, ratio_text, round_ratios  # noqa: E402


def _timing_args(name: str, batch_size: int, steps: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(SCRATCH / name),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=2e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
    )


def _plain_pretrain(config, data, tok_artifact, steps: int, packed_rows: bool) -> tuple[float, float]:
    """A plain Trainer script: returns (seconds, real tokens trained on)."""
    from transformers import DataCollatorForLanguageModeling, Trainer

    from models.decoder import build_causal_lm
    from tasks.data.loaders import load_corpus as load_pretraining_corpus
    from tasks.data.loaders import load_tokenizer as load_causal_tokenizer
    from tasks.kinds.generation.pretrain import packed

    cfg = config.causal_pretrain
    tok = load_causal_tokenizer(tok_artifact)
    model = build_causal_lm(cfg.shape, len(tok), tok.pad_token_id, tok.eos_token_id)
    corpus = load_pretraining_corpus(data)["train"]
    if packed_rows:
        train = packed(corpus, tok, cfg.block_size, "packing")
    else:
        train = corpus.map(
            lambda b: tok([t + tok.eos_token for t in b["text"]], truncation=True, max_length=cfg.block_size),
            batched=True,
            remove_columns=["text"],
        )
    batch = cfg.optim.batch_size
    args = _timing_args("plain-pretrain", batch, steps)
    trainer = Trainer(
        model=model, args=args, train_dataset=train, data_collator=DataCollatorForLanguageModeling(tok, mlm=False)
    )
    seconds = trainer.train().metrics["train_runtime"]
    rows = train.shuffle(seed=0).select(range(min(len(train), steps * batch)))  # about the rows it trained on
    real = sum(len(ids) for ids in rows["input_ids"]) * steps * batch / max(len(rows), 1)
    return seconds, real


def _padded_tokens_s(config, data, tok_artifact, steps: int) -> float:
    """Real (non-pad) tokens/s of the plain Trainer on one text per row, padded to the batch's longest."""
    seconds, real = _plain_pretrain(config, data, tok_artifact, steps, packed_rows=False)
    return real / seconds


def _our_pretrain(config, data, tok_artifact, steps: int, tag: str) -> float:
    from core.tracking import Tracking
    from tasks.kinds.generation.pretrain import causal_pretrain

    ws = config.workspace.resolved().model_copy(update={"root": str(SCRATCH / f"ours-{tag}")})
    cfg = config.causal_pretrain.model_copy(update={"max_steps": steps, "save_steps": steps})
    return causal_pretrain(cfg, data, tok_artifact, Tracking.resolve(config.tracking, ws), ws).train_seconds


def _sft_chats_per_s(config, data, tok_artifact, base: Path, batching: str, epochs: int, tag: str) -> float:
    from core.tracking import Tracking
    from tasks.kinds.generation.sft import sft

    ws = config.workspace.resolved().model_copy(update={"root": str(SCRATCH / f"sft-{tag}")})
    cfg = config.sft.model_copy(update={"batching": batching, "epochs": epochs, "base_model": str(base)})
    return sft(cfg, data, tok_artifact, None, Tracking.resolve(config.tracking, ws), ws).samples_per_second


def _pretraining(config, data, tok_artifact, steps: int, repeats: int) -> None:
    cfg = config.causal_pretrain
    tokens = steps * cfg.optim.batch_size * cfg.block_size
    print(
        f"1. causal pretraining, {steps} steps x batch {cfg.optim.batch_size} x {cfg.block_size} tokens ({load_text()})"
    )
    count = iter(range(10**6))
    sides = {  # each: real tokens per second
        "plain": lambda: tokens / _plain_pretrain(config, data, tok_artifact, steps, packed_rows=True)[0],
        "ours": lambda: tokens / _our_pretrain(config, data, tok_artifact, steps, str(next(count))),
        "padded": lambda: _padded_tokens_s(config, data, tok_artifact, steps),
    }
    results = alternating_rounds(sides, repeats)
    for i, r in enumerate(results):
        print(
            f"   run {i + 1}: plain Trainer (packed) {r['plain']:,.0f} tok/s, causal_pretrain task {r['ours']:,.0f} "
            f"tok/s; one text per padded row {r['padded']:,.0f} real tok/s"
        )
    print(f"   causal_pretrain task / plain Trainer tokens/s: {ratio_text(round_ratios(results, 'ours', 'plain'), 3)}")
    print(f"   packed (ours) / padded rows, real tokens/s: {ratio_text(round_ratios(results, 'ours', 'padded'))}")
    print(f"   ({load_text()})")


def _instruction_tuning(config, data, tok_artifact, epochs: int, repeats: int) -> None:
    from models.decoder import build_causal_lm
    from tasks.data.loaders import load_tokenizer as load_causal_tokenizer

    tok = load_causal_tokenizer(tok_artifact)
    base = SCRATCH / "decoder"
    build_causal_lm(config.causal_pretrain.shape, len(tok), tok.pad_token_id, tok.eos_token_id).save_pretrained(base)
    tok.save_pretrained(base)
    print(f"2. instruction tuning chats/s, {epochs} epoch(s), batch {config.sft.optim.batch_size} ({load_text()})")
    count = iter(range(10**6))

    def side(batching: str):
        return lambda: _sft_chats_per_s(config, data, tok_artifact, base, batching, epochs, f"{batching}-{next(count)}")

    results = alternating_rounds({b: side(b) for b in ("pad", "padding_free", "group_by_length")}, repeats)
    for i, r in enumerate(results):
        print(f"   run {i + 1}: " + ", ".join(f"{b} {v:.1f} chats/s" for b, v in r.items()))
    for batching in ("padding_free", "group_by_length"):
        ratios = round_ratios(results, batching, "pad")
        print(f"   {batching} / pad to longest chats/s: {ratio_text(ratios)}   target >= 1.5")
    print(f"   ({load_text()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="pretraining steps per timed run")
    parser.add_argument("--epochs", type=int, default=1, help="instruction-tuning epochs per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sft-only", action="store_true", help="skip the pretraining comparison")
    parser.add_argument("--set", action="append", default=[], help="a preset override, e.g. generation_data.source=F")
    args = parser.parse_args()

    from flows.config import load_config
    from tasks.kinds.generation.data import prepare_instructions
    from tasks.kinds.generation.tokenizer import train_causal_tokenizer

    config = load_config(ROOT / "configs" / "tiny-generation.yaml", [f"workspace.root={SCRATCH / 'ws'}", *args.set])
    ws = config.workspace.resolved()
    data = prepare_instructions(config.generation_data, ws)
    tok_artifact = train_causal_tokenizer(config.generation_tokenizer, data, ws)
    if not args.sft_only:
        _pretraining(config, data, tok_artifact, args.steps, args.repeats)
    _instruction_tuning(config, data, tok_artifact, args.epochs, args.repeats)


if __name__ == "__main__":
    main()
