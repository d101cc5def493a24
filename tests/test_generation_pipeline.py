"""The generation track through the same `pipeline` flow, registry, gate and promotion (real Prefect, real MLflow).

configs/tiny-generation.yaml shrunk for speed: a first run is registered and becomes champion, `@champion` answers
prompts, and a much worse second run (instruction tuning for one step) is registered but refused by the gate. At these
sizes the first model may not beat the retrieval baseline yet (measured: chrF 55.4 vs 59.2, and 57.4 after 4 epochs);
then the gate refuses it for that reason only and it is promoted by hand, as `zero2one promote --force` would.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.config import load_config
from flows.pipeline import pipeline
from tasks.promotion import promote
from tasks.tracking import Tracking

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

ROOT = Path(__file__).resolve().parent.parent
# The sizes of tests/test_generation.py's tiny stage run: SFT beats the model before it by > 10 chrF there.
SHRUNK = [
    "generation_data.max_rows=480",
    "causal_pretrain.block_size=64",
    "causal_pretrain.max_steps=40",
    "causal_pretrain.save_steps=20",
    "causal_pretrain.optim={batch_size: 8, learning_rate: 0.003, warmup_steps: 5}",
    "sft.epochs=2",
    "sft.optim={batch_size: 16, learning_rate: 0.003, warmup_steps: 10}",
    "evaluate_generation.max_prompts=40",
    "evaluate_generation.max_new_tokens=32",
]
PROMPT = "State the verdict and the aspects of this review.\nReview: The screen of this phone is great."


def test_generator_is_promoted_and_a_worse_one_is_refused(workspace: Path) -> None:
    config = load_config(ROOT / "configs" / "tiny-generation.yaml", [f"workspace.root={workspace}", *SHRUNK])
    first = pipeline(config)

    reg, ev = first.registered, first.evaluation
    assert (reg.name, reg.version, first.task) == ("zero2one-generator", "1", "generation")
    assert ev.model.chrf > ev.before_sft.chrf + 10 and first.verdict.metric == "chrf"
    failed = {r.name for r in first.verdict.rules if not r.passed}
    if ev.model.chrf > ev.retrieval.chrf:
        assert first.verdict.passed and first.promotion is not None
    else:  # the retrieval rule, and the evaluation's verdict that applies it too, refused it: nothing else
        assert failed == {"evaluation", "baseline"} and "retrieval baseline" in first.verdict.headline
        assert first.promotion is None
        promote(
            reg.name,
            reg.version,
            Tracking.resolve(config.tracking, config.workspace.resolved()),
            force=True,
            reason="test: a champion to compare the next run with",
        )
    mlflow.set_tracking_uri(first.tracking_uri)
    client = MlflowClient(first.tracking_uri, registry_uri=first.tracking_uri)
    tags = client.get_model_version(reg.name, "1").tags
    assert tags["zero2one.lineage.pretrain_run_id"] == first.encoder.mlflow_run_id
    assert tags["zero2one.lineage.finetune_run_id"] == first.model.mlflow_run_id
    assert tags["zero2one.task"] == "generation" and float(tags["zero2one.metrics.test_chrf"]) > 0
    champion = mlflow.pyfunc.load_model(f"models:/{reg.name}@champion")
    answer = champion.predict(pd.DataFrame({"prompt": [PROMPT]}), params={"max_new_tokens": 32})["response"][0]
    assert answer.strip()

    worse = pipeline(config.model_copy(update={"sft": config.sft.model_copy(update={"epochs": 0.02})}))
    assert worse.registered.version == "2" and worse.promotion is None and not worse.verdict.passed
    assert {"causal_pretrain", "train_causal_tokenizer"} <= set(worse.reused_stages)
    failed = {r.name for r in worse.verdict.rules if not r.passed}
    assert "champion" in failed and worse.verdict.champion_version == "1"
    assert str(client.get_model_version_by_alias(reg.name, "champion").version) == "1"
    print(f"\nfirst: {first.verdict.headline}\nworse: {worse.verdict.headline}")
