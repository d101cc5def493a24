"""The served model, and switching to a new one when the alias moves.

A version is a classifier or a generator, told by what its pyfunc holds (the same for versions registered before
the `zero2one.task` tag). The new version is loaded in the background; the swap is one reference assignment, so a
batch that already took the old model finishes on it and no request ever sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from core.registry_names import PROMOTED_EVENT, model_resource_id

# tasks/registry/promotion.py emits PROMOTED_EVENT on every move of `champion`; the names module is light (no torch).
from serving.kv_batches import runtime_for

log = logging.getLogger("zero2one.serving")


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, loaded: the predictor inside its pyfunc, a classifier or a generator."""

    name: str
    version: str
    classifier: object | None  # models.onnx_classifier.OnnxClassifier or models.classifier.TextClassifier
    generator: object | None = None  # models.generator.TextGenerator
    runtime: object | None = None  # a generator's decoding runtime (serving.kv_batches.Runtime)
    tagger: object | None = None  # models.token_classifier.Tagger (an entity tagger)
    reader: object | None = None  # models.span_reader.SpanReader (a question answerer)

    @property
    def task(self) -> str:
        if self.tagger is not None:
            return "entities"
        if self.reader is not None:
            return "answers"
        return "generation" if self.generator is not None else "classification"

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    def classify(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, truncated) in one forward pass: which texts were cut to the model's window."""
        if hasattr(self.classifier, "classify"):
            return self.classifier.classify(texts, batch_size=len(texts))
        # A version registered before predictors reported truncation (its code ships with it): count tokens here.
        probs = self.classifier.predict_proba(texts, batch_size=len(texts))
        return probs, np.asarray([n > self.classifier.max_length for n in _token_counts(self.classifier, texts)])


def _token_counts(classifier, texts: list[str]) -> list[int]:
    tokenizer = classifier.tokenizer
    if hasattr(tokenizer, "backend_tokenizer"):  # transformers' fast tokenizer (TextClassifier)
        return [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    tokenizer.no_truncation()  # tokenizers.Tokenizer (OnnxClassifier): count, then restore the window
    try:
        return [sum(e.attention_mask) for e in tokenizer.encode_batch(texts)]
    finally:
        tokenizer.enable_truncation(classifier.max_length)


class ModelHolder:
    """Follows `models:/<name>@<alias>` in the MLflow registry."""

    def __init__(self, client: mlflow.MlflowClient, name: str, alias: str, generation_runtime: str = "auto"):
        self.client, self.name, self.alias = client, name, alias
        self.generation_runtime = generation_runtime
        self.current: LoadedModel | None = None
        self._lock = asyncio.Lock()

    def _target_version(self) -> str:
        return str(self.client.get_model_version_by_alias(self.name, self.alias).version)

    def _load(self, version: str) -> LoadedModel:
        # Loaded through MLflow (from the version's own artifacts and code), so the classifier's pyfunc picks the
        # ONNX graph when the optimization stage chose one and PyTorch otherwise. Serving then calls that predictor
        # directly: the pyfunc's DataFrame in / DataFrame out costs more than the forward pass of a small model.
        # The pyfunc says what it is: a generator's carries `generator` (models/generator_pyfunc.py), a classifier's
        # `classifier` (models/pyfunc_model.py), a tagger's `tagger` (models/entity_pyfunc.py), a question answerer's
        # `reader` (models/answers_pyfunc.py); each kind's routes serve what its pyfunc carries.
        inner = mlflow.pyfunc.load_model(f"models:/{self.name}/{version}").unwrap_python_model()
        if getattr(inner, "tagger", None) is not None:  # models/entity_pyfunc.py
            return LoadedModel(self.name, version, None, tagger=inner.tagger)
        if getattr(inner, "reader", None) is not None:  # models/answers_pyfunc.py
            return LoadedModel(self.name, version, None, reader=inner.reader)
        if getattr(inner, "generator", None) is not None:
            onnx_dir = getattr(inner, "onnx_dir", None)  # None: no graph passed parity, or registered before one could
            runtime = runtime_for(inner.generator, onnx_dir, self.generation_runtime, f"{self.name} v{version}")
            return LoadedModel(self.name, version, None, inner.generator, runtime)
        return LoadedModel(self.name, version, inner.classifier)

    async def refresh(self) -> bool:
        """Load the alias's version if it is not the one being served. True if the model changed."""
        async with self._lock:
            try:
                version = await asyncio.to_thread(self._target_version)
            except MlflowException as e:
                log.warning("cannot resolve %s@%s: %s", self.name, self.alias, e)
                return False
            if self.current is not None and self.current.version == version:
                return False
            log.info("loading %s version %s (%s)", self.name, version, self.alias)
            loaded = await asyncio.to_thread(self._load, version)
            previous, self.current = self.current, loaded
            # The imported libraries and the model are ~300k long-lived objects; without this, each
            # full garbage collection walks them all (~150 ms with the service stalled: the p99 latency).
            gc.collect()
            gc.freeze()
            was = previous.version if previous else "none"
            how = f" decoding with {loaded.runtime.describe}" if loaded.runtime else ""
            log.info("now serving %s v%s, a %s model%s (was %s)", self.name, version, loaded.task, how, was)
            return True

    async def follow_promotions(self) -> None:
        """Reload as soon as `zero2one.model.promoted` arrives for this model: Prefect's event stream, over a websocket.

        Needs a Prefect server (PREFECT_API_URL); polling (`watch`) stays on as the fallback. A lost
        connection is reopened after a pause.
        """
        from prefect.events import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        promotions = EventFilter(
            event=EventNameFilter(name=[PROMOTED_EVENT]),
            resource=EventResourceFilter(id=[model_resource_id(self.name)]),
        )
        while True:
            try:
                async with get_events_subscriber(filter=promotions) as events:
                    log.info("following %s events for %s", PROMOTED_EVENT, self.name)
                    async for event in events:
                        log.info("%s: %s", event.event, event.payload.get("reason", ""))
                        await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("lost the Prefect event stream (%s); polling continues, reconnecting in 10 s", e)
                await asyncio.sleep(10)

    async def watch(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.refresh()
            except Exception:  # a broken new version must not take the service down
                log.exception("reload failed; still serving version %s", self.current and self.current.version)
