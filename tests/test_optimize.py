"""The optimize stage on a real tiny fine-tuned BERT: ONNX export, fusions, int8, the parity gate, the pyfunc."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from datasets import DatasetDict
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from core.errors import PipelineInputError
from core.tracking import Tracking, TrackingConfig
from core.workspace import Workspace
from models.classifier import TextClassifier
from models.encoder import EncoderShape, build_masked_lm
from models.onnx_classifier import OnnxClassifier
from tasks.data.loaders import load_splits, load_tokenizer
from tasks.data.prepare import DataConfig, prepare_data
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.finetune import finetune
from tasks.kinds.classification.registry import PYFUNC_CODE, signature
from tasks.optimize import LatencyConfig, OptimizeConfig, optimize
from tasks.results import FinetunedModel
from tasks.training.common import OptimConfig
from tasks.training.tokenizer import TokenizerConfig, train_tokenizer

QUICK_LATENCY = LatencyConfig(sequence_lengths=[16, 64], warmup=1, iterations=2)
SHAPE = EncoderShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_length=64)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Demo data, a WordPiece tokenizer and a 2-layer BERT fine-tuned from random init (a few seconds).

    One torch thread: on a small shared CI machine two threads contending for two busy cores made
    fine-tuning 20x slower (measured: 25 s vs 1.1 s for the same steps).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("optimize")
    ws = Workspace(root=str(root / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(), ws)
    data = prepare_data(DataConfig(max_rows=600), ws)
    tok_artifact = train_tokenizer(TokenizerConfig(vocab_size=1000), data, ws)
    tok = load_tokenizer(tok_artifact)
    encoder = root / "encoder"
    build_masked_lm(SHAPE, len(tok), tok.pad_token_id).save_pretrained(str(encoder))
    tok.save_pretrained(str(encoder))
    cfg = FinetuneConfig(base_model=str(encoder), epochs=6, optim=OptimConfig(learning_rate=3e-3, warmup_steps=5))
    model = finetune(cfg, data, tok_artifact, None, tracking, ws)
    yield {"root": root, "ws": ws, "tracking": tracking, "data": data, "model": model, "tok": tok}
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def optimized(env):
    cfg = OptimizeConfig(latency=QUICK_LATENCY)
    return optimize(cfg, env["data"], env["model"], env["tracking"], env["ws"])


def _test_texts(env) -> list[str]:
    return list(load_splits(env["data"])["test"]["text"])


def test_export_round_trip_matches_pytorch(env, optimized):
    fp32 = optimized.parity["fp32"]
    assert fp32.passed and fp32.agreement == 1.0 and fp32.max_abs_logit_diff < 1e-4
    assert optimized.fused_ops["Attention"] == SHAPE.num_layers  # ORT really fused attention
    assert optimized.eval_size == len(_test_texts(env))
    int8 = optimized.parity["int8"]
    assert optimized.variant == ("int8" if int8.passed else "fp32") and optimized.passed
    assert Path(optimized.onnx_uri).is_file()

    # The torch-free tokenizer feeds the graph exactly what the HF tokenizer feeds PyTorch.
    model_dir = env["model"].uri
    texts = _test_texts(env)[:16]
    onnx_inputs = OnnxClassifier(Path(optimized.uri, "model-fp32.onnx"), model_dir).encode(texts)
    hf_inputs = AutoTokenizer.from_pretrained(model_dir)(texts, padding=True, truncation=True, max_length=64)
    for name, values in onnx_inputs.items():
        np.testing.assert_array_equal(values, np.asarray(hf_inputs[name]))

    cells = {(r["backend"], r["batch"], r["seq_len"]) for r in optimized.latency}
    assert cells == {(b, n, s) for b in ("pytorch", "ort-fp32", "ort-int8") for n in (1, 32) for s in (16, 64)}
    assert optimized.sizes_mb["ort-int8"] < optimized.sizes_mb["ort-fp32"]
    run = env["tracking"].client().get_run(optimized.mlflow_run_id)
    assert run.data.metrics["served_agreement"] == optimized.parity[optimized.variant].agreement
    assert len(run.data.metrics) <= 8  # a handful of metrics, not one chart per latency cell
    artifacts = {a.path for a in env["tracking"].client().list_artifacts(run.info.run_id, "optimize")}
    assert {"optimize/latency.json", "optimize/parity.json"} <= artifacts
    assert run.data.tags["zero2one.optimize.variant"] == optimized.variant


def test_broken_quantization_is_caught_and_not_used(env):
    reference = TextClassifier(env["model"].uri).predict(_test_texts(env))
    assert len(set(reference)) > 1  # else "every logit is 0" would agree with PyTorch by chance
    # Static int8 with the logits pinned to a quantization step of 1000: every logit rounds to 0.
    absurd = {"logits": [{"scale": np.array(1e3, np.float32), "zero_point": np.array(0, np.int8)}]}
    cfg = OptimizeConfig(
        quantization="static",
        calibration_samples=16,
        quantization_options={"TensorQuantOverrides": absurd},
        latency=QUICK_LATENCY,
    )
    result = optimize(cfg, env["data"], env["model"], env["tracking"], env["ws"])

    int8 = result.parity["int8"]
    assert not int8.passed and "agreement" in int8.reason and int8.max_abs_logit_diff > 0.01
    assert (result.variant, result.onnx_file) == ("fp32", "model-fp32.onnx")
    assert result.parity["fp32"].passed and any(r.startswith("int8: parity failed") for r in result.reasons)
    assert "int8 rejected" in result.verdict


def test_pyfunc_serves_the_onnx_graph_without_torch(env, optimized):
    """The registered pyfunc with an `onnx` artifact: same labels as PyTorch, and torch is never imported."""
    model_dir = env["model"].uri
    texts = _test_texts(env)
    env["tracking"].activate()
    with mlflow.start_run(run_name="pyfunc-onnx"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"model": model_dir, "onnx": optimized.onnx_uri},
            code_paths=[str(PYFUNC_CODE.parent)],
            signature=signature(env["data"].labels),
            pip_requirements=["mlflow", "onnxruntime", "tokenizers", "pandas"],
        )
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({info.model_uri!r})\n"
        f"out = model.predict(pd.DataFrame({{'text': {texts!r}}}))\n"
        "assert 'torch' not in sys.modules, 'the ONNX path imported torch'\n"
        "print(json.dumps({'columns': list(out.columns), 'labels': out['label'].tolist()}))\n"
    )
    env_vars = {**os.environ, "MLFLOW_TRACKING_URI": env["tracking"].uri}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env_vars, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    labels = env["data"].labels
    assert out["columns"] == ["label", "score", *[f"prob_{lab}" for lab in labels]]
    expected = TextClassifier(model_dir).predict(texts)
    agreement = np.mean([a == b for a, b in zip(out["labels"], expected, strict=True)])
    assert agreement >= 0.99 if optimized.variant == "int8" else agreement == 1.0


# ---------------------------------------------------------------- bad input


def _dir_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _save_classifier(env, name: str, **config) -> FinetunedModel:
    labels = env["data"].labels
    bert = BertConfig(
        vocab_size=config.pop("vocab_size", len(env["tok"])),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
        **config,
    )
    path = env["root"] / name
    BertForSequenceClassification(bert).save_pretrained(str(path))
    env["tok"].save_pretrained(str(path))
    return env["model"].model_copy(update={"uri": str(path), "base_model": name})


def test_export_failure_names_stage_and_op_and_leaves_the_model_alone(env):
    model = _save_classifier(env, "xielu", hidden_act="xielu")  # xIELU uses aten::expm1: no ONNX symbolic
    before = _dir_digest(Path(model.uri))
    with pytest.raises(PipelineInputError, match=r"optimize: ONNX export of .* failed .*aten::expm1"):
        optimize(OptimizeConfig(latency=QUICK_LATENCY), env["data"], model, env["tracking"], env["ws"])
    assert _dir_digest(Path(model.uri)) == before


def test_tokenizer_model_mismatch_is_named(env):
    model = _save_classifier(env, "small-vocab", vocab_size=50)
    with pytest.raises(PipelineInputError, match=r"optimize: .*tokenizer/model mismatch"):
        optimize(OptimizeConfig(), env["data"], model, env["tracking"], env["ws"])


def test_empty_evaluation_set_is_named(env):
    splits = load_splits(env["data"])
    empty_dir = env["root"] / "empty-test"
    empty = DatasetDict({**splits, "test": splits["test"].select([])})
    empty.save_to_disk(str(empty_dir / "splits"), num_shards=dict.fromkeys(empty, 1))  # 0 rows: 0 shards fails
    data = env["data"].model_copy(update={"uri": str(empty_dir)})
    with pytest.raises(PipelineInputError, match=r"optimize: the evaluation set .* is empty"):
        optimize(OptimizeConfig(), data, env["model"], env["tracking"], env["ws"])
