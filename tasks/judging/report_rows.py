"""The tables people read: rows for the evaluation, the gate's verdict and their rules, for both tracks.

The stages' Prefect artifacts, the model card, the register stage and the run summary print the same rows, so
they live here instead of in the stage that computes the numbers. Rounded for people (<= 4 decimals); full
precision stays in MLflow metrics.
"""

from __future__ import annotations

from tasks.results.classification import EvalReport
from tasks.results.generation import GenerationReport
from tasks.results.registry import GateVerdict
from tasks.results.scores import GenerationScores, RuleResult, Scores


def _nums(s: Scores) -> dict:
    return {"accuracy": round(s.accuracy, 4), "macro_f1": round(s.macro_f1, 4)}


def _generation_nums(s: GenerationScores) -> dict:
    rouge = {} if s.rouge_l is None else {"ROUGE-L": round(s.rouge_l, 2)}
    return {"exact_match": round(s.exact_match, 4), "chrF": round(s.chrf, 2), **rouge}


def evaluation_rows(report: EvalReport) -> list[dict]:
    """The fine-tuned model against TF-IDF and the majority class on the test split."""
    named = (
        ("fine-tuned", report.model),
        ("tf-idf + logreg", report.tfidf_logreg),
        ("majority class", report.majority),
    )
    return [{"model": name, **_nums(s)} for name, s in named]


def generation_rows(report: GenerationReport) -> list[dict]:
    """The instruction-tuned model against the model before SFT and retrieval on the test prompts."""
    rows = [("instruction-tuned", report.model), ("before SFT", report.before_sft), ("retrieval", report.retrieval)]
    return [
        {"model": name, **_generation_nums(s), "perplexity": "-" if s.perplexity is None else round(s.perplexity, 3)}
        for name, s in rows
        if s is not None
    ]


def rule_rows(rules: list[RuleResult], values: bool = True) -> list[dict]:
    """One row a rule: pass, FAIL, or what it is when it judged nothing ("not judged", "not set"); the value it
    judged (`values`), and why."""
    return [
        {
            "rule": r.name,
            "result": r.state if r.state != "judged" else "pass" if r.passed else "FAIL",
            **({"value": r.value} if values else {}),
            "why": r.reason,
        }
        for r in rules
    ]


def verdict_rows(verdict: GateVerdict, report: EvalReport | None = None) -> list[dict]:
    """Challenger, champion and TF-IDF baseline on the frozen set; the majority class from the evaluate stage."""
    rows = [{"model": f"challenger v{verdict.version}", "set": "frozen", **_nums(verdict.challenger)}]
    if verdict.champion:
        rows.append({"model": f"champion v{verdict.champion_version}", "set": "frozen", **_nums(verdict.champion)})
    if verdict.baseline:
        registered = f" (registered as v{verdict.baseline_version})" if verdict.baseline_version else ""
        rows.append({"model": f"tf-idf + logreg{registered}", "set": "frozen", **_nums(verdict.baseline)})
    if report:
        rows.append({"model": "majority class", "set": "newest test", **_nums(report.majority)})
    return rows


def generation_verdict_rows(verdict: GateVerdict) -> list[dict]:
    """Challenger, champion and retrieval on the frozen prompts: the three numbers the gate decided on."""
    rows = [(f"challenger v{verdict.version}", verdict.challenger)]
    if verdict.champion is not None:
        rows.append((f"champion v{verdict.champion_version}", verdict.champion))
    rows.append(("retrieval baseline", verdict.baseline))
    return [{"model": who, **_generation_nums(s)} for who, s in rows if s]
