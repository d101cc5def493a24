"""Generation as a model kind: a decoder (trained here, or a real checkpoint such as SmolLM2) instruction-tuned,
judged on chrF or exact match against the model before tuning and retrieval, served as ONNX Runtime GenAI graphs
where parity holds."""

from __future__ import annotations

from tasks.judging.report_rows import generation_rows
from tasks.kinds.generation import card
from tasks.kinds.generation.data import prepare_instructions
from tasks.kinds.generation.evaluate import evaluate_generation
from tasks.kinds.generation.gate import gate_generation
from tasks.kinds.generation.optimize import optimize_generation
from tasks.kinds.generation.pretrain import causal_pretrain
from tasks.kinds.generation.register import register_generator
from tasks.kinds.generation.retraining import retrain_settings
from tasks.kinds.generation.sft import sft
from tasks.kinds.generation.tokenizer import train_causal_tokenizer
from tasks.kinds.kind import ModelKind, Sections
from tasks.monitoring.generation_detect import detect_for_champion
from tasks.monitoring.generation_retrain_data import write_generation_retrain_data
from tasks.results.generation import GenerationReport


def headline(report: GenerationReport) -> dict[str, float]:
    """The pipeline run's metrics: the runs table compares runs without opening them."""
    metrics = {"test_chrf": report.model.chrf, "test_exact_match": report.model.exact_match}
    metrics |= {"retrieval_chrf": report.retrieval.chrf, "test_perplexity": report.model.perplexity or 0.0}
    return metrics | ({"before_sft_chrf": report.before_sft.chrf} if report.before_sft else {})


def try_it(workspace: str, model: str, sample: str | None) -> str:
    """The generator pyfunc on a prompt."""
    return '.predict(pandas.DataFrame({"prompt": ["..."]}), params={"max_new_tokens": 48})'


GENERATION = ModelKind(
    name="generation",
    report=GenerationReport,
    sections=Sections(
        "generation_data",
        "generation_tokenizer",
        "causal_pretrain",
        "sft",
        "evaluate_generation",
        "optimize_generation",
    ),
    prepare=prepare_instructions,
    tokenizer=train_causal_tokenizer,
    pretrain=causal_pretrain,
    finetune=sft,
    evaluate=evaluate_generation,
    optimize=optimize_generation,
    gate=gate_generation,
    register=register_generator,
    headline=headline,
    comparison_rows=generation_rows,
    card_sections=card.card_sections,
    card_numbers=card.card_numbers,
    served_numbers=card.served_numbers,
    card_figure=card.card_figure,
    sample_text=lambda data: None,  # prompts are not one-liners; `try_it` shows the call instead
    try_it=try_it,
    detect_drift=detect_for_champion,
    retrain_data=write_generation_retrain_data,
    retrain_settings=retrain_settings,
)
