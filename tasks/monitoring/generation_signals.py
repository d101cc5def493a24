"""The drift signals of a generator: two Evidently reports, one per reference, as `signals.py` builds the classifier's.

- prompts, against the champion's train + validation prompts: the prompt text itself (a domain classifier tells
  reference from current), its length and its share of non-letter characters (Evidently text descriptors);
- model, against the champion's own view of its held-out validation + test prompts: its answers (length, share of
  non-letter characters, and a regular-expression descriptor for refusal phrases, all Evidently descriptors on the
  `response` column), the share of prompt words its tokenizer splits, and the drift of the prompt embeddings
  (mean-pooled last hidden state of the causal LM, Evidently's `EmbeddingsDrift`).
  Answers are compared with the champion's answers on held-out prompts, not with the reference answers: a model's
  answers are not its training answers (shorter, or longer where it does not stop), and that gap would fire on
  every window. The tokenizer signal needs held-out text for the reason `signals.py` gives.

Evidently's `OOVWordsPercentage` needs NLTK word lists downloaded at run time (no network here), so unknown words
are the tokenizer's splits (`model_view.oov_words_pct`), as for the classifier.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from threadpoolctl import threadpool_limits

from tasks.monitoring.config import MonitorConfig
from tasks.monitoring.policy import auc_threshold

# Phrases of an answer that declines; matched case-insensitively anywhere in the answer.
REFUSAL_PATTERN = r"(?i)\b(i can'?t|i cannot|i can not|i am unable|i'm unable|i'm sorry|i am sorry|as an ai)\b"
PROMPT_DESCRIPTORS = ("prompt_length", "prompt_non_letter_pct")
RESPONSE_DESCRIPTORS = ("response_length", "response_non_letter_pct", "refusal")
# Evidently column -> (signal name, group)
PROMPT_SIGNALS = {"prompt": ("prompt", "inputs"), **{d: (d, "inputs") for d in PROMPT_DESCRIPTORS}}
RESPONSE_SIGNALS = {
    **{d: (d, "model") for d in RESPONSE_DESCRIPTORS},
    "prompt_oov_words_pct": ("prompt_oov_words_pct", "inputs"),
    "embeddings": ("prompt_embeddings", "model"),
}


def _nonempty(values: pd.Series) -> pd.Series:
    """Evidently 0.7.23's NonLetterCharacterPercentage divides by the length: an empty answer raises
    ZeroDivisionError. It reads a copy where "" is one space (0% non-letters), the other descriptors the text."""
    return values.fillna("").astype(str).map(lambda t: t or " ")


def _quiet_summaries(columns: list[str], min_rows: int):
    """Descriptor summaries for the reader, without tests of their own (the drift tests decide)."""
    from evidently.presets import TextEvals
    from evidently.presets.dataset_stats import ValueStatsTests
    from evidently.tests import gte

    # Evidently 0.7.23 fails to render when a column's row-count tests are emptied, so those stay default.
    no_tests = ValueStatsTests(
        **{f.name: [] for f in dataclasses.fields(ValueStatsTests) if f.name != "row_count_tests"}
    )
    return TextEvals(columns=columns, row_count_tests=[gte(min_rows)], column_tests={c: no_tests for c in columns})


def prompts_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, title: str, text: str):
    """Prompt text, its length and non-letter share (frames with a `prompt` column), current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength
    from evidently.presets import DataDriftPreset

    from tasks.monitoring.report_layout import Titled

    def dataset(df: pd.DataFrame):
        return Dataset.from_pandas(
            df[["prompt"]].assign(prompt_text=_nonempty(df["prompt"])),
            data_definition=DataDefinition(text_columns=["prompt", "prompt_text"]),
            descriptors=[
                TextLength("prompt", alias="prompt_length"),
                NonLetterCharacterPercentage("prompt_text", alias="prompt_non_letter_pct"),
            ],
        )

    drift = DataDriftPreset(
        columns=["prompt", *PROMPT_DESCRIPTORS],
        drift_share=cfg.policy.drift_share,
        text_method="abs_text_content_drift",
        text_threshold=auc_threshold(cfg.text_threshold, len(ref), len(cur)),
        num_method=cfg.numeric_method(len(ref), len(cur)),
        num_threshold=cfg.num_threshold,
    )
    summaries = _quiet_summaries(list(PROMPT_DESCRIPTORS), cfg.policy.min_rows)
    report = Report([Titled(title=title, text=text, shares=len(ref) != len(cur), items=[drift, summaries])],
                    include_tests=True)  # fmt: skip
    return report.run(dataset(cur), dataset(ref))


def responses_report(cfg: MonitorConfig, ref: pd.DataFrame, cur: pd.DataFrame, title: str, text: str):
    """Answer descriptors, tokenizer splits and prompt embeddings (frames from `generation_view.model_frame`)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import NonLetterCharacterPercentage, RegExp, TextLength
    from evidently.metrics import EmbeddingsDrift, ValueDrift
    from evidently.metrics.embeddings import ModelDriftMethod
    from evidently.tests import lte

    from tasks.monitoring.report_layout import Titled

    emb = [c for c in ref.columns if c.startswith("emb_")]
    columns = ["response", "response_text", "prompt_oov_words_pct", *emb]
    ref, cur = (df.assign(response_text=_nonempty(df["response"])) for df in (ref, cur))
    definition = DataDefinition(
        text_columns=["response", "response_text"],
        numerical_columns=["prompt_oov_words_pct", *emb],
        embeddings={"embeddings": emb},
    )
    descriptors = [
        TextLength("response", alias="response_length"),
        NonLetterCharacterPercentage("response_text", alias="response_non_letter_pct"),
        RegExp("response", REFUSAL_PATTERN, alias="refusal"),
    ]
    threshold = auc_threshold(cfg.embeddings_threshold, len(ref), len(cur))
    num_method = cfg.numeric_method(len(ref), len(cur))
    metrics = [
        ValueDrift(column="response_length", method=num_method, threshold=cfg.num_threshold),
        ValueDrift(column="response_non_letter_pct", method=num_method, threshold=cfg.num_threshold),
        ValueDrift(column="refusal", method=cfg.cat_method, threshold=cfg.cat_threshold),
        ValueDrift(column="prompt_oov_words_pct", method=num_method, threshold=cfg.num_threshold),
        EmbeddingsDrift(
            embeddings_name="embeddings",
            drift_method=ModelDriftMethod(threshold=threshold, bootstrap=False),
            tests=[lte(threshold)],
        ),
        _quiet_summaries(list(RESPONSE_DESCRIPTORS), cfg.policy.min_rows),
    ]
    report = Report([Titled(title=title, text=text, shares=len(ref) != len(cur), items=metrics)], include_tests=True)
    # One OpenMP thread for EmbeddingsDrift's t-SNE picture: see `signals.model_report`.
    with threadpool_limits(limits=1, user_api="openmp"):
        return report.run(
            Dataset.from_pandas(cur[columns], data_definition=definition, descriptors=descriptors),
            Dataset.from_pandas(ref[columns], data_definition=definition, descriptors=descriptors),
        )
