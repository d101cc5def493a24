"""Training throughput, side by side in one run.

1. Pretraining: tokens/s of the training loop inside our `pretrain` task (MLflow logging, checkpoints,
   fault hooks included) vs a plain Trainer script with the same model,
   data, batch size and steps (target >= 1.0: the pipeline adds no overhead to the hot loop).
2. Fine-tuning: samples/s with our batching (dynamic padding + length-grouped batches) vs padding
   every batch to the model's max length (target >= 1.5).

Both run their two sides once per repeat, the first side alternating between repeats, and report the median of
the per-repeat ratios.

    python bench/train_throughput.py [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ROOT, SCRATCH, alternating_rounds, load_text, median, ratio_text, round_ratios  # noqa: E402


def _timing_args(name: str, batch_size: int, **overrides):
    """Trainer arguments for a timed loop: no saving, logging, reporting or progress bar, fixed seed."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(SCRATCH / name),
        per_device_train_batch_size=batch_size,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
        **overrides,
    )


def _plain_pretrain(config, data, tok_artifact, steps: int) -> float:
    """What a user would write without the pipeline: the Trainer on the same corpus."""
    from transformers import DataCollatorForLanguageModeling, Trainer

    from models.encoder import build_masked_lm
    from tasks.data.loaders import load_corpus, load_tokenizer

    tok = load_tokenizer(tok_artifact)
    model = build_masked_lm(config.pretrain.shape, len(tok), tok.pad_token_id)
    ds = load_corpus(data).map(
        lambda b: tok(b["text"], truncation=True, max_length=64), batched=True, remove_columns=["text"]
    )
    args = _timing_args("plain-pretrain", batch_size=64, max_steps=steps, learning_rate=1e-3)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorForLanguageModeling(tok))
    return trainer.train().metrics["train_runtime"]


def _our_pretrain(config, data, tok_artifact, steps: int, tag: str) -> float:
    from core.tracking import Tracking
    from tasks.training.pretrain import pretrain

    ws = config.workspace.resolved().model_copy(update={"root": str(SCRATCH / f"ours-{tag}")})
    cfg = config.pretrain.model_copy(update={"max_steps": steps, "save_steps": steps})
    return pretrain(cfg, data, tok_artifact, Tracking.resolve(config.tracking, ws), ws).train_seconds


def _finetune_samples_per_s(encoder_dir: str, data, tok_artifact, pad_to_max: bool, epochs: int) -> float:
    from transformers import DataCollatorWithPadding, Trainer

    from models.encoder import build_classifier
    from tasks.data.loaders import load_splits, load_tokenizer
    from tasks.kinds.classification.finetune import _tokenize

    tok = load_tokenizer(tok_artifact)
    model = build_classifier(encoder_dir, data.labels)
    train = (
        load_splits(data)["train"]
        .map(_tokenize, batched=True, remove_columns=["text"], fn_kwargs={"tok": tok, "max_length": 64})
        .rename_column("label", "labels")
    )
    collator = (
        DataCollatorWithPadding(tok, padding="max_length", max_length=64)
        if pad_to_max
        else DataCollatorWithPadding(tok)
    )
    args = _timing_args(
        "ft",
        batch_size=32,
        num_train_epochs=epochs,
        train_sampling_strategy="random" if pad_to_max else "group_by_length",
    )
    out = Trainer(model=model, args=args, train_dataset=train, data_collator=collator).train()
    return out.metrics["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from flows.config import load_config
    from tasks.data.loaders import load_corpus, load_tokenizer
    from tasks.data.prepare import prepare_data
    from tasks.training.tokenizer import train_tokenizer

    config = load_config(ROOT / "configs" / "tiny.yaml", [f"workspace.root={SCRATCH / 'ws'}"])
    ws = config.workspace.resolved()
    data = prepare_data(config.data, ws)
    tok_artifact = train_tokenizer(config.tokenizer, data, ws)
    tok = load_tokenizer(tok_artifact)
    mean_len = sum(len(ids) for ids in tok(load_corpus(data)["text"][:2000])["input_ids"]) / 2000
    tokens = args.steps * config.pretrain.optim.batch_size * mean_len

    print(f"1. pretraining, {args.steps} steps x batch {config.pretrain.optim.batch_size} (~{tokens:,.0f} tokens)")
    ratios = []
    for i in range(args.repeats):
        # Alternate which side goes first: the first run of a pair tends to differ (caches, CPU clocks).
        if i % 2 == 0:
            plain = _plain_pretrain(config, data, tok_artifact, args.steps)
            ours = _our_pretrain(config, data, tok_artifact, args.steps, str(i))
        else:
            ours = _our_pretrain(config, data, tok_artifact, args.steps, str(i))
            plain = _plain_pretrain(config, data, tok_artifact, args.steps)
        ratios.append(plain / ours)
        print(
            f"   run {i + 1}: plain Trainer {tokens / plain:,.0f} tok/s, pretrain task {tokens / ours:,.0f} tok/s"
            f" -> ratio {ratios[-1]:.3f}"
        )
    print(f"   pretrain task / plain Trainer tokens/s (median): {median(ratios):.3f}   target >= 1.0")

    from models.encoder import build_masked_lm

    encoder_dir = SCRATCH / "encoder"
    build_masked_lm(config.pretrain.shape, len(tok), tok.pad_token_id).save_pretrained(encoder_dir)
    tok.save_pretrained(encoder_dir)
    print("2. fine-tuning samples/s, dynamic padding + length grouping vs padding to max length (64)")
    sides = {  # in rounds, the order rotated: neither side always first
        pad: (lambda pad=pad: _finetune_samples_per_s(str(encoder_dir), data, tok_artifact, pad_to_max=pad, epochs=1))
        for pad in (False, True)
    }
    results = alternating_rounds(sides, args.repeats)
    for i, r in enumerate(results):
        print(f"   run {i + 1}: ours {r[False]:.0f} samples/s, pad-to-max {r[True]:.0f} samples/s")
    print(f"   ours / pad-to-max samples/s: {ratio_text(round_ratios(results, False, True))}   target >= 1.5")
    print(f"   ({load_text()})")


if __name__ == "__main__":
    main()
