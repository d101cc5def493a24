"""The evaluate_generation stage: the instruction-tuned model against two baselines on held-out prompts.

Scores, all on the same frozen test prompts: answer perplexity (the loss on the reference answers' tokens),
exact match, chrF (sacrebleu, 0-100) and ROUGE-L (rouge-score) of greedy generations (fixed seed), generated in
batches. Baselines: the model *before* instruction tuning (the pretrained decoder, or a real pretrained LLM
zero-shot with its own chat template - "did fine-tuning help?"; same tokenizer and template), and retrieval -
the answer of the most similar training prompt by TF-IDF cosine (scikit-learn), which is what "just look it up"
would give. A table of
samples (prompt / reference / model / baselines) goes to Prefect and MLflow. `passed` (beats retrieval and the
pre-SFT model on chrF, and reaches `min_chrf`) is what the gate reads; the retrieval part follows the gate's
`baseline_rule` switch (`quality`, as for classifiers), so a rule switched off with its reason is off here too.

Its config is in `tasks/stage_configs.py` (the gate generates the same way), its result (`GenerationReport`,
`GenerationScores`) in `tasks/results.py`, chrF / exact match and the retrieval baseline in `tasks/judging/scoring.py`,
the rows in `tasks/judging/report_rows.py`.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import mlflow
import torch

from core import reporting
from core.errors import PipelineInputError
from core.storage import materialize, publish_dir
from core.tracking import Tracking, stage_run
from core.workspace import Workspace
from models.generator import TextGenerator
from tasks.data.loaders import load_splits
from tasks.judging.report_rows import generation_rows
from tasks.judging.scoring import retrieval_answers, score_answers
from tasks.kinds.generation.chats import IGNORE, encode_chat, prompt_text
from tasks.kinds.generation.llm_checkpoint import resolve_checkpoint
from tasks.results.common import Messages
from tasks.results.data import PreparedInstructions
from tasks.results.generation import GenerationReport, InstructionTunedModel
from tasks.results.scores import GenerationScores
from tasks.stage_configs import EvaluateGenerationConfig, QualityBar


@torch.inference_mode()
def answer_perplexity(generator: TextGenerator, chats: list[Messages], batch_size: int = 32) -> float:
    """exp(mean loss per answer token) over `chats`: how likely the model finds the reference answers."""
    tok, model = generator.tokenizer, generator.model
    total, count = 0.0, 0
    for start in range(0, len(chats), batch_size):
        rows = [encode_chat(tok, m, generator.context) for m in chats[start : start + batch_size]]
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor([r["input_ids"] + [tok.pad_token_id] * (width - len(r["input_ids"])) for r in rows])
        labels = torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(r["input_ids"]) for r in rows])[:, None]).long()
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE, reduction="sum")
        total, count = total + loss.item(), count + int((target != IGNORE).sum())
    return math.exp(min(total / max(count, 1), 50))


def _generate(generator: TextGenerator, prompts: list[Messages], cfg: EvaluateGenerationConfig) -> list[str]:
    chats = [m[:-1] for m in prompts]
    return generator.generate(chats, cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.batch_size)


def _samples(test: list[Messages], answers: dict[str, list[str]], n: int) -> list[dict[str, str]]:
    return [
        {"prompt": prompt_text(m), "reference": m[-1]["content"], **{k: v[i] for k, v in answers.items()}}
        for i, m in enumerate(test[:n])
    ]


def _verdict(scores: dict[str, GenerationScores], cfg: EvaluateGenerationConfig, quality: QualityBar) -> list[str]:
    model, reasons = scores["model"], []
    judged = ("retrieval", "before_sft") if quality.baseline_rule else ("before_sft",)  # gate.baseline_rule=false
    for name in judged:
        if name in scores and model.chrf <= scores[name].chrf:
            reasons.append(f"chrF {model.chrf:.2f} does not beat the {name} baseline ({scores[name].chrf:.2f})")
    if model.chrf < cfg.min_chrf:
        reasons.append(f"chrF {model.chrf:.2f} < evaluate_generation.min_chrf={cfg.min_chrf}")
    return reasons


def evaluate_generation(
    cfg: EvaluateGenerationConfig,
    data: PreparedInstructions,
    model: InstructionTunedModel,
    tracking: Tracking,
    ws: Workspace,
    parent_run_id: str | None = None,
    quality: QualityBar | None = None,
) -> GenerationReport:
    """Score the model and both baselines on the test prompts; `quality` is the gate's bar (`GateConfig.quality()`)."""
    splits = load_splits(data)
    test = list(splits["test"]["messages"])[: cfg.max_prompts]
    if not test:
        raise PipelineInputError(f"the test split of {data.uri} is empty: nothing to evaluate on")
    references = [m[-1]["content"] for m in test]
    model_dir = materialize(model.uri)
    generator = TextGenerator(model_dir)
    answers = {"model": _generate(generator, test, cfg)}
    scores = {"model": score_answers(answers["model"], references, answer_perplexity(generator, test, cfg.batch_size))}
    answers["retrieval"] = retrieval_answers(list(splits["train"]["messages"]), test)
    scores["retrieval"] = score_answers(answers["retrieval"], references)
    if cfg.baseline_before_sft:  # same tokenizer and template, weights from before instruction tuning
        # The untuned model: a GGUF base is its converted folder (tasks/kinds/generation/llm_checkpoint.py),
        # zero-shot with its template
        before = TextGenerator(resolve_checkpoint(model.base_model, ws), tokenizer_dir=model_dir)
        answers["before_sft"] = _generate(before, test, cfg)
        perplexity = answer_perplexity(before, test, cfg.batch_size)
        scores["before_sft"] = score_answers(answers["before_sft"], references, perplexity)
    reasons = _verdict(scores, cfg, quality or QualityBar())
    samples = _samples(test, answers, cfg.samples)
    with (
        stage_run(
            tracking, "evaluate_generation", parent_run_id, {"zero2one.data_fingerprint": data.fingerprint}
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name, s in scores.items():
            prefix = "test" if name == "model" else f"baseline_{name}"
            mlflow.log_metrics({f"{prefix}_{k}": v for k, v in s.model_dump().items() if v is not None})
        mlflow.log_table({k: [r[k] for r in samples] for k in samples[0]} if samples else {}, "evaluation/samples.json")
        out = Path(tmp)
        (out / "metrics.json").write_text(json.dumps({k: v.model_dump() for k, v in scores.items()}, indent=2))
        (out / "generations.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _samples(test, answers, len(test)))
        )
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
        uri = publish_dir(out, ws.uri("evaluations", "generation", model.uri.rstrip("/").split("/")[-2]))
    report = GenerationReport(
        uri=uri,
        model=scores["model"],
        before_sft=scores.get("before_sft"),
        retrieval=scores["retrieval"],
        passed=not reasons,
        reasons=reasons,
        test_size=len(test),
        samples=samples,
        mlflow_run_id=run.info.run_id,
    )
    _report(report, tracking)
    return report


def _report(report: GenerationReport, tracking: Tracking) -> None:
    verdict = "passed" if report.passed else "failed: " + "; ".join(report.reasons)
    reporting.table("evaluate-generation", generation_rows(report), description=f"{report.test_size} test prompts")
    reporting.table("generation-samples", report.samples, description="prompt / reference / model / baselines")
    reporting.markdown(
        "evaluate-generation-summary",
        f"# Generation evaluation: {verdict}\n\n{reporting.md_table(generation_rows(report))}\n\n"
        f"Samples:\n\n{reporting.md_table(report.samples)}\n\nGenerations and metrics: `{report.uri}`  \n"
        f"MLflow run: [{report.mlflow_run_id}]({tracking.run_url(report.mlflow_run_id)})\n",
    )
    reporting.logger().info("generation evaluation %s: %s", verdict, generation_rows(report))
