"""Named entities as a model kind: an encoder (a checkpoint, or pretrained here) fine-tuned into a token classifier,
judged on strict entity-level F1 against a CRF on word features, served as ONNX int8 where its tags agree with
PyTorch's.

From scratch (`pretrain.enabled`, no `entity_finetune.base_model`): the classifier's tokenizer and masked-LM stages on
the training sentences (`pretraining.py`), then a token-classification head on that encoder. Retraining reads labelled
sentences from a file: served texts carry no gold entities.
"""

from __future__ import annotations

from tasks.kinds.entities import card
from tasks.kinds.entities.evaluate import evaluate_entities
from tasks.kinds.entities.evaluation import evaluation_rows
from tasks.kinds.entities.finetune import finetune_entities
from tasks.kinds.entities.gate import gate_entities
from tasks.kinds.entities.optimize import optimize_entities
from tasks.kinds.entities.prepare import prepare_entities
from tasks.kinds.entities.pretraining import pretrain_entities
from tasks.kinds.entities.register import register_entities
from tasks.kinds.entities.retraining import retrain_settings
from tasks.kinds.kind import ModelKind, Sections
from tasks.monitoring.entity_detect import detect_for_champion
from tasks.monitoring.entity_retrain_data import write_entity_retrain_data
from tasks.results.entities import EntityReport, PreparedEntities
from tasks.training.tokenizer import train_tokenizer


def headline(report: EntityReport) -> dict[str, float]:
    """The pipeline run's metrics: the runs table compares runs without opening them."""
    return {"test_entity_f1": report.model.f1, "test_entity_macro_f1": report.model.macro_f1, "crf_f1": report.crf.f1}


def sample_text(data: PreparedEntities) -> str | None:
    """A test sentence with an entity in it."""
    from tasks.kinds.entities.splits import sentences

    return next((" ".join(s.words) for s in sentences(data, "test") if any(t != "O" for t in s.tags)), None)


def try_it(workspace: str, model: str, sample: str | None) -> str:
    """The tagger pyfunc on a sentence."""
    text = (sample or "Paris is in France").replace('"', "'")
    return f'mlflow.pyfunc.load_model("models:/{model}").predict(["{text}"])'


ENTITIES = ModelKind(
    name="entities",
    report=EntityReport,
    sections=Sections("entity_data", "tokenizer", "pretrain", "entity_finetune", "entity_evaluate", "entity_optimize"),
    prepare=prepare_entities,
    tokenizer=train_tokenizer,
    pretrain=pretrain_entities,
    finetune=finetune_entities,
    evaluate=evaluate_entities,
    optimize=optimize_entities,
    gate=gate_entities,
    register=register_entities,
    headline=headline,
    comparison_rows=evaluation_rows,
    card_sections=card.card_sections,
    card_numbers=card.card_numbers,
    served_numbers=card.served_numbers,
    card_figure=card.card_figure,
    sample_text=sample_text,
    try_it=try_it,
    detect_drift=detect_for_champion,
    retrain_data=write_entity_retrain_data,
    retrain_settings=retrain_settings,
)
