"""Recipes that look at the data (#23): many classes get a head rate and a longer schedule, imbalanced classes a
weighted loss, two balanced classes the recipe unchanged; a setting in the config wins over all of it.

The training test runs `RecipeTrainer` on a tiny separable fixture where one class is rare: the weighted loss finds
the rare class that the unweighted one misses, and the head's parameters really sit at their own learning rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks.kinds.classification.config import LABEL_SMOOTHING, FinetuneConfig
from tasks.kinds.classification.recipe_trainer import RecipeTrainer, is_head
from tasks.kinds.classification.recipes import HEAD_LEARNING_RATE, MAX_EPOCHS, DataShape, plan_finetune

BANKING77 = DataShape(class_counts=[31, 45, 90, 105, 117, 130, 150, 168] + [117] * 69)  # 77 intents, 35-187 rows
SMS = DataShape(class_counts=[3370, 506])  # ham, spam after de-duplication: 6.7x
RARE = DataShape(class_counts=[800, 900, 850, 700, 1000, 60])  # a 6-class question set, one class at 1.4%
PRETRAINED = FinetuneConfig(base_model="some/checkpoint")


def test_many_classes_get_a_head_rate_and_a_schedule_sized_to_the_classes():
    plan = plan_finetune(PRETRAINED, BANKING77, (40, "p99"))
    assert plan.head_learning_rate == HEAD_LEARNING_RATE and plan.optim.learning_rate == 3e-5
    assert plan.epochs == 9  # 1000 views / a median of 117 examples
    assert plan.total_steps == math.ceil(BANKING77.n_train / 32) * 9 and plan.from_config == []
    assert plan.class_weights is None  # 187/35 rows: 5.3x, under the 10x that counts as imbalanced
    assert plan.label_smoothing == LABEL_SMOOTHING and plan.patience == 5  # half of 9 evaluations, rounded up
    text = plan.describe()
    assert "77 classes with a median of 117" in text and "77-way head" in text and "macro_f1" in text
    assert "label smoothing 0.1" in text


def test_few_examples_per_class_stop_at_the_maximum():
    tiny = DataShape(class_counts=[20] * 30)
    assert plan_finetune(PRETRAINED, tiny, (40, "p99")).epochs == MAX_EPOCHS


def test_two_balanced_classes_keep_the_recipe():
    plan = plan_finetune(PRETRAINED, DataShape.balanced(3876), (73, "p99"))
    assert (plan.epochs, plan.optim.learning_rate, plan.head_learning_rate, plan.class_weights) == (3, 3e-5, None, None)
    assert plan.label_smoothing == 0.0 and plan.patience == 2 and "smoothing" not in plan.describe()
    assert plan.reasons == [] and "the data asked for nothing else" in plan.describe()
    sms = plan_finetune(PRETRAINED, SMS, (73, "p99"))  # 6.7x: not weighted, so SMS trains as it was measured
    assert (sms.epochs, sms.head_learning_rate, sms.class_weights) == (3, None, None)


def test_imbalanced_classes_weight_the_loss_in_either_recipe():
    plan = plan_finetune(PRETRAINED, RARE, (30, "p99"))
    weights = plan.class_weights
    assert weights is not None and weights[5] == max(weights) and weights[4] == min(weights)
    assert np.dot(weights, RARE.class_counts) == pytest.approx(RARE.n_train, rel=1e-3)  # sklearn's "balanced"
    assert "16.7x the smallest" in plan.describe()
    scratch = plan_finetune(FinetuneConfig(), DataShape(class_counts=[500, 20]), (30, "p99"))
    assert scratch.class_weights is not None and scratch.head_learning_rate is None and scratch.epochs == 6
    assert scratch.label_smoothing == 0.0  # the from-scratch recipe keeps its measured loss


def test_settings_in_the_config_win_over_the_data():
    cfg = FinetuneConfig(
        base_model="x",
        epochs=2,
        class_weights="none",
        label_smoothing=0.0,
        early_stopping_patience=1,
        optim={"head_learning_rate": 1e-4, "learning_rate": 5e-5},
    )
    plan = plan_finetune(cfg, BANKING77, (40, "p99"))
    assert (plan.epochs, plan.head_learning_rate, plan.optim.learning_rate) == (2, 1e-4, 5e-5)
    assert (plan.label_smoothing, plan.patience) == (0.0, 1)
    assert plan_finetune(cfg, RARE, (40, "p99")).class_weights is None
    assert plan.from_config == [
        "optim.learning_rate", "optim.head_learning_rate", "epochs", "class_weights", "label_smoothing",
        "early_stopping_patience",
    ]  # fmt: skip
    forced = plan_finetune(FinetuneConfig(base_model="x", class_weights="balanced"), SMS, (40, "p99"))
    assert forced.class_weights == [round(3876 / (2 * 3370), 4), round(3876 / (2 * 506), 4)]
    again = FinetuneConfig.model_validate_json(cfg.model_dump_json())  # deployments and torchrun get JSON
    assert plan_finetune(again, BANKING77, (40, "p99")).from_config == plan.from_config


class _Linear(torch.nn.Module):
    """A body and a head, named like a Hugging Face classifier's, returning a dict with logits."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(2, 8)
        self.classifier = torch.nn.Linear(8, 2)

    def forward(self, x, labels=None):
        logits = self.classifier(torch.relu(self.body(x)))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class _Rows(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def _rare_recall(tmp_path, weights) -> tuple[float, RecipeTrainer]:
    """Train on 400 common rows and 8 rare ones (a shifted cluster, overlapping a little); the rare class's recall."""
    from transformers import TrainingArguments, set_seed

    set_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(400, 2, generator=gen), torch.randn(8, 2, generator=gen) + 1.8])
    y = torch.cat([torch.zeros(400, dtype=torch.long), torch.ones(8, dtype=torch.long)])
    test_x = torch.randn(200, 2, generator=gen) + 1.8
    args = TrainingArguments(
        str(tmp_path / str(bool(weights))), per_device_train_batch_size=32, num_train_epochs=15,
        learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = RecipeTrainer(
        model=_Linear(), args=args, train_dataset=_Rows(x, y), head_learning_rate=3e-2, class_weights=weights
    )
    trainer.train()
    with torch.no_grad():
        predicted = trainer.model(test_x.to(trainer.model.classifier.weight.device))["logits"].argmax(-1)
    return float((predicted == 1).float().mean()), trainer


def test_class_weights_find_a_rare_class_and_the_head_has_its_own_rate(tmp_path):
    plain, _ = _rare_recall(tmp_path, None)
    weighted, trainer = _rare_recall(tmp_path, [408 / 800, 408 / 16])
    assert weighted >= plain + 0.5, (plain, weighted)  # measured: recall 0.00 unweighted, 0.84 weighted
    rates = {is_head(n): g["initial_lr"] for g in trainer.optimizer.param_groups for n in _names(trainer, g)}
    assert rates == {True: 3e-2, False: 1e-2}


def _names(trainer, group) -> list[str]:
    ids = {id(p) for p in group["params"]}
    return [n for n, p in trainer.model.named_parameters() if id(p) in ids]


@pytest.mark.parametrize("weights", [None, [0.5, 2.0]])
def test_label_smoothing_reaches_the_loss_weighted_or_not(tmp_path, weights):
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    torch.manual_seed(0)
    tiny = BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        initializer_range=3.0,
    )
    args = TrainingArguments(str(tmp_path), label_smoothing_factor=0.1, report_to=[], use_cpu=True)
    trainer = RecipeTrainer(model=BertForSequenceClassification(tiny).eval(), args=args, class_weights=weights)
    ids, labels = torch.randint(0, 30, (6, 5), generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 3)
    loss = trainer.compute_loss(trainer.model, {"input_ids": ids, "labels": labels})
    logits = trainer.model(input_ids=ids)["logits"]
    w = torch.tensor(weights) if weights else None
    smoothed = torch.nn.functional.cross_entropy(logits, labels, weight=w, label_smoothing=0.1)
    assert float(loss) == pytest.approx(float(smoothed), rel=1e-4)
    assert float(loss) != pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels, weight=w)), rel=1e-3)


def test_early_stopping_waits_half_the_evaluations_of_a_many_class_schedule():
    steps = plan_finetune(FinetuneConfig(base_model="x", eval_steps=100), BANKING77, (40, "p99"))
    assert steps.patience == math.ceil(steps.total_steps / 100 / 2)  # counted in evaluations, not epochs
    short = plan_finetune(FinetuneConfig(base_model="x", epochs=3), BANKING77, (40, "p99"))
    assert short.patience == 2  # never below the usual patience
