"""Which int8 graph keeps a tagger's tags or a reader's spans: dynamic int8 (per tensor, per channel, FFN outputs
left in fp32) against int8 weights with fp32 arithmetic (MatMulNBits, blocks of 32 or 128; `accuracy_level` 4 rounds
activations per block instead), each against PyTorch on the same inputs (#26).

Point it at the workspace of a finished preset run; it reads that run's model and fp32 graph and writes the variants
beside its report. Entities: every WNUT-17 test sentence, agreement over all words and over entity words (either
side not O), and test F1. Answers: a seeded sample of the run's test questions, span agreement and F1.

    python bench/kinds_int8.py --entities WS [--answers WS --questions 50] [--out DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import WNUT_TEST, load_text, newest  # noqa: E402


def weight_variants(fp32: Path, out: Path) -> dict[str, Path]:
    from models.int8_weights import quantize_weights_int8

    return {
        name: Path(quantize_weights_int8(fp32, out / f"w8_{i}.onnx", block, level))
        for i, (name, block, level) in enumerate([
            ("int8-weights (block 32)", 32, None),
            ("int8-weights (block 128)", 128, None),
            ("int8-weights (block 32, int8 arithmetic)", 32, 4),
        ])
    }  # fmt: skip


def ffn_outputs(graph_path: Path) -> list[str]:
    """The second MatMul of each feed-forward block (its input comes from a Gelu): the widest activations."""
    import onnx

    graph = onnx.load(str(graph_path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    return [
        n.name for n in graph.node
        if n.op_type == "MatMul" and n.input[0] in producer and "Gelu" in producer[n.input[0]].op_type
    ]  # fmt: skip


def entities(ws: Path, out: Path, threads: int) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from models.token_classifier import Tagger
    from tasks.kinds.entities.metrics import entity_scores
    from tasks.kinds.entities.onnx_int8 import agreement
    from tasks.kinds.entities.reader import read_entities

    model_dir, fused = newest(ws, "finetune_entities/*/model"), newest(ws, "optimize_entities/*/onnx/model.fused.onnx")
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    graphs = {"fp32": fused}
    for name, per_channel, exclude in (
        ("dynamic int8, per tensor", False, []),
        ("dynamic int8, per channel (the stage's)", True, []),
        ("dynamic int8, per channel, FFN outputs fp32", True, ffn_outputs(fused)),
    ):
        graphs[name] = out / f"dyn_{len(graphs)}.onnx"
        quantize_dynamic(
            str(fused), str(graphs[name]), weight_type=QuantType.QInt8, per_channel=per_channel,
            nodes_to_exclude=exclude, extra_options=options,
        )  # fmt: skip
    graphs |= weight_variants(fused, out)
    test = read_entities(WNUT_TEST).sentences
    words, gold = [s.words for s in test], [s.tags for s in test]
    tagged = {"pytorch": [tags for tags, _ in Tagger.load(model_dir, threads=threads).tag(words)]}
    rows = {}
    for name, path in graphs.items():
        start = time.perf_counter()
        tags = [t for t, _ in Tagger.load(model_dir, path, threads=threads).tag(words)]
        same = agreement(tagged["pytorch"], tags)
        rows[name] = {
            "entity_words": round(same["entity_tokens"], 4), "words": round(same["tokens"], 5),
            "first_300_entity_words": round(agreement(tagged["pytorch"][:300], tags[:300])["entity_tokens"], 4),
            "f1": round(entity_scores(gold, tags).micro.f1, 4), "mb": round(path.stat().st_size / 2**20, 1),
            "tag_s": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(f"entities {name}: {rows[name]}", flush=True)
    rows["pytorch"] = {"f1": round(entity_scores(gold, tagged["pytorch"]).micro.f1, 4), "sentences": len(test)}
    return rows


def answers(ws: Path, out: Path, questions: int, threads: int) -> dict:
    import datasets

    from models.span_reader import SpanReader
    from tasks.kinds.answers.export import quantize_int8, span_agreement
    from tasks.kinds.answers.judging_stage import read, score, texts
    from tasks.kinds.answers.splits import rows_to_questions, sample

    model_dir, fp32 = newest(ws, "finetune_answers/*/model"), newest(ws, "optimize_answers/*/onnx/model.onnx")
    config = json.loads((model_dir / "config.json").read_text())
    graphs = {"fp32": fp32}
    for name, per_channel in (("dynamic int8, per tensor (the stage's)", False), ("dynamic int8, per channel", True)):
        graphs[name] = out / f"qa_dyn_{len(graphs)}.onnx"
        quantize_int8(fp32, graphs[name], config["num_attention_heads"], config["hidden_size"], per_channel)
    graphs |= {k: v for k, v in weight_variants(fp32, out).items() if "128" not in k}
    split = datasets.load_from_disk(str(newest(ws, "answer_data/*/splits")))["test"]
    test = sample(rows_to_questions(split[:]), questions, 0)
    scoring = "cmrc" if any("\u4e00" <= ch <= "\u9fff" for ch in test[0].context[:200]) else "squad"
    spans = {"pytorch": read(SpanReader.load(model_dir, threads=threads), test)}
    rows = {"pytorch": {"f1": round(score(test, texts(spans["pytorch"]), scoring).f1, 4), "questions": len(test)}}
    for name, path in graphs.items():
        spans[name] = read(SpanReader.load(model_dir, path, threads=threads), test)
        rows[name] = {
            "spans": round(span_agreement(spans["pytorch"], spans[name]), 4),
            "f1": round(score(test, texts(spans[name]), scoring).f1, 4), "mb": round(path.stat().st_size / 2**20, 1),
        }  # fmt: skip
        print(f"answers {name}: {rows[name]}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entities", type=Path, help="workspace of a finished configs/ner.yaml run")
    p.add_argument("--answers", type=Path, help="workspace of a finished configs/qa.yaml run")
    p.add_argument("--questions", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("bench-int8"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    report = {"load_before": load_text()}
    if a.entities:
        report["entities"] = entities(a.entities, a.out, a.threads)
    if a.answers:
        report["answers"] = answers(a.answers, a.out, a.questions, a.threads)
    report["load_after"] = load_text()
    (a.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
