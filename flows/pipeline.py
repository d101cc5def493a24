"""The `pipeline` flow: data, tokenizer, pretrain, (tune), finetune, evaluate, optimize, register, gate, promote.

Thin on purpose: it only wires stages. `config.task` names the model kind (`tasks/kinds/registry.py`), which
says which stage functions fill the kind-specific boxes (classification: encoder and classifier; generation:
decoder, instruction tuning and generation scoring); registry, gate, promotion and the wiring are the same for all.

Each stage is a plain function in `tasks/`, wrapped as
a retryable, cached Prefect task; stages hand each other URIs and small typed results, so each
can run on a different worker. The gate judges the new version against the champion and the
model card records the verdict; only a version that passes is promoted to `champion`.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow
from pydantic import BaseModel

from core import reporting
from core.fingerprint import code_version, hash_json
from core.registry_names import CHAMPION, GATE_VERDICT
from core.retry import RetryPolicy
from core.run_context import flow_run_id
from core.tracking import Tracking, close_pipeline_run, prefect_run_url
from flows.approval import await_approval, candidate
from flows.config import PipelineConfig
from flows.outcome import completed, mark_flow_run
from flows.placement import run_placed
from flows.resume import THIS_RUN, pipeline_run, stage_task_for
from tasks.judging.gate import gate
from tasks.kinds.registry import kind, kind_of
from tasks.registry.model_card import write_model_card
from tasks.registry.promotion import candidate_reasons, promote, promote_baseline
from tasks.registry.register import register
from tasks.results import (
    Compression,
    DecoderArtifact,
    EncoderArtifact,
    Evaluation,
    GateVerdict,
    Lineage,
    Optimized,
    Prepared,
    Promotion,
    RegisteredModel,
    TokenizerArtifact,
    Trained,
    TuneResult,
)


class PipelineResult(BaseModel):
    """Where everything a run produced is, and how good the model is."""

    task: str = "classification"
    data: Prepared
    tokenizer: TokenizerArtifact
    encoder: EncoderArtifact | DecoderArtifact | None
    tuned: TuneResult | None = None
    compression: Compression | None = None  # compress.enabled: the student made, and whether it serves
    model: Trained
    evaluation: Evaluation
    optimized: Optimized | None
    registered: RegisteredModel
    verdict: GateVerdict
    promotion: Promotion | None
    approval: str | None = None  # gate.approval=required: pending (no run waits), approved or rejected
    baseline_reasons: list[str] | None = None  # the TF-IDF baseline version's own gate: [] passed, None not registered
    sample_text: str | None = None  # one text of the test split, for the summary's "try it"
    reused_stages: list[str]
    mlflow_run_id: str
    tracking_uri: str
    workspace: str
    flow_run_id: str | None = None

    @property
    def aliases(self) -> list[str]:
        """The version's aliases after this run: `champion` only when the gate passed and it was promoted."""
        return self.registered.aliases + ([CHAMPION] if self.promoted else [])

    @property
    def promoted(self) -> bool:
        """This run's version became champion (not the baseline in its place)."""
        return self.promotion is not None and self.promotion.version == self.registered.version

    @property
    def baseline_promoted(self) -> bool:
        """gate.baseline_as_champion made the TF-IDF baseline's version the first champion instead."""
        return self.promotion is not None and self.promotion.version == self.verdict.baseline_version

    @property
    def outcome(self) -> str:
        """One word for run names and tags: `champion`, `baseline-champion`, `awaiting-approval`, `rejected`,
        `passed` (not promoted) or `refused`."""
        if self.promoted or self.baseline_promoted:
            return CHAMPION if self.promoted else "baseline-champion"
        if self.approval in ("pending", "rejected"):
            return "awaiting-approval" if self.approval == "pending" else "rejected"
        return "passed" if self.verdict.passed else "refused"

    @property
    def title(self) -> str:
        return f"{self.registered.name} v{self.registered.version}"

    @property
    def gate_summary(self) -> str:
        if self.verdict.passed:
            return "passed" + ("" if self.promoted else " (gate.promote=false: not promoted)")
        return "failed: " + "; ".join(self.verdict.reasons)


class _Stages:
    """Runs stage functions as Prefect tasks and remembers which ones came from the cache."""

    def __init__(self, config: PipelineConfig):
        self.ws = config.workspace.resolved()
        self.placement = config.placement
        self.tracking = Tracking.resolve(config.tracking, self.ws)
        self.run_id: str | None = None  # the pipeline's MLflow run, once open
        self.reused: list[str] = []

    def __call__(self, fn: Callable, policy: RetryPolicy, *args, cache: bool | str = True, **kwargs):
        if where := self.placement.where(fn.__name__):  # its own flow run on another work pool
            result, cached = run_placed(fn, policy, where, self.ws, cache is True, *args, **kwargs)
        else:
            state = stage_task_for(fn, policy, cache)(*args, return_state=True, **kwargs)
            result, cached = state.result(), state.name == "Cached"
        if cached:
            self.reused.append(fn.__name__)
        return result

    def tracked(self, fn: Callable, policy: RetryPolicy, *args, cache: bool = True, **kwargs):
        """A stage that takes `(..., tracking, ws, parent_run_id=)`: its MLflow run nests under the pipeline's."""
        return self(fn, policy, *args, self.tracking, self.ws, cache=cache, parent_run_id=self.run_id, **kwargs)


@flow(name="pipeline", log_prints=True, persist_result=True)  # a resumed retrain reuses it (flows/resume.py)
def pipeline(config: PipelineConfig = PipelineConfig()) -> PipelineResult:
    """Train, evaluate and register a text classifier or generator from `config` (see configs/*.yaml)."""
    stage = _Stages(config)
    ws, tracking = stage.ws, stage.tracking
    model_kind, cfgs = kind(config.task), config.stages()
    lineage = Lineage(config_hash=hash_json(config), code_version=code_version(), config=config.model_dump(mode="json"))
    stage.run_id, resumed = _open_parent_run(config, lineage, tracking)
    ok = False
    try:
        # Data is re-read every run (cheap) so that a changed file is noticed; later stages key on its fingerprint.
        data = stage(model_kind.prepare, cfgs.data.retry, cfgs.data, ws, cache=THIS_RUN)
        tokenizer = stage(model_kind.tokenizer, cfgs.tokenizer.retry, cfgs.tokenizer, data, ws)
        encoder = None
        if cfgs.pretrain.enabled:
            encoder = stage.tracked(model_kind.pretrain, cfgs.pretrain.retry, cfgs.pretrain, data, tokenizer)
        tuned, finetune_cfg, compression, model = _train(stage, config, cfgs.finetune, data, tokenizer, encoder)
        quality = config.gate.quality()  # the evaluate verdict applies the gate's rules (one switched off is off)
        report = stage.tracked(model_kind.evaluate, cfgs.evaluate.retry, cfgs.evaluate, data, model, quality=quality)
        optimized = None
        if cfgs.optimize.enabled:
            optimized = stage.tracked(model_kind.optimize, cfgs.optimize.retry, cfgs.optimize, data, model)
        registered = stage.tracked(
            register, config.registry.retry, config.registry, data, model, report, lineage, optimized=optimized
        )
        # Gate, card and promotion read the registry as it is now: reused only by this flow run once resumed.
        gate_args = (config.gate, data, registered, report)
        gate_kwargs = {  # the parity rule; how a generator answers; the compress stage's floor
            "optimized": optimized,
            "generation": cfgs.evaluate,
            "compression": compression,
        }
        verdict = stage.tracked(gate, config.gate.retry, *gate_args, cache=THIS_RUN, **gate_kwargs)
        as_run = config.model_copy(update={"finetune": finetune_cfg} if tuned else {})  # tuned settings, as it ran
        card_args = (card_config(as_run), data, registered, report, verdict, tracking)
        stage(write_model_card, config.gate.retry, *card_args, cache=THIS_RUN)
        ok = True
    finally:
        if not (resumed and ok):  # a resumed run's parent run was closed before it suspended
            done = _parent_run(registered, report, verdict, tracking) if ok else {}
            close_pipeline_run(tracking, stage.run_id, ok, **done)
    # After the parent run is closed: with gate.approval=required the flow run may suspend here.
    promotion, approval = _promotion(config, stage, registered, verdict)
    return _finish(
        config,
        stage,
        approval=approval,
        data=data,
        tokenizer=tokenizer,
        encoder=encoder,
        tuned=tuned,
        compression=compression,
        model=model,
        evaluation=report,
        optimized=optimized,
        registered=registered,
        verdict=verdict,
        promotion=promotion,
    )


def _train(stage: _Stages, config: PipelineConfig, finetune_cfg, data, tokenizer, encoder) -> tuple:
    """The search (tune.enabled), fine-tuning, and compression (compress.enabled: the student replaces the teacher
    only if it kept the floor). Returns the search's result, the fine-tuning settings as they ran, the compression
    and the model the later stages take."""
    model_kind, tuned, compression = kind(config.task), None, None
    if config.tune.enabled:  # kinds with a search only (the config refuses it for the others)
        search = (config.tune, finetune_cfg, data, tokenizer, encoder)
        tuned = stage.tracked(model_kind.tune, config.tune.retry, *search)
        finetune_cfg = tuned.apply(finetune_cfg)
    model = stage.tracked(model_kind.finetune, finetune_cfg.retry, finetune_cfg, data, tokenizer, encoder)
    if config.compress.enabled:
        compression = stage.tracked(model_kind.compress, config.compress.retry, config.compress, data, model)
        model = compression.apply(model)
    return tuned, finetune_cfg, compression, model


def _open_parent_run(config: PipelineConfig, lineage: Lineage, tracking: Tracking) -> tuple[str, bool]:
    """The pipeline's MLflow run, or this flow run's own when it resumes after approval (flows/resume.py)."""
    return pipeline_run(
        tracking,
        config.registry.model_name,  # renamed to "NAME vN" once the version exists
        {"config_hash": lineage.config_hash, "code_version": lineage.code_version},
        {"zero2one.config_hash": lineage.config_hash},
    )


def card_config(config: PipelineConfig) -> dict:
    """The config as the model card shows it: the sections this run's model kind read."""
    return config.model_dump(mode="json", exclude=config.other_kinds_sections())


def _promotion(
    config: PipelineConfig, stage: _Stages, registered: RegisteredModel, verdict: GateVerdict
) -> tuple[Promotion | None, str | None]:
    """Promote what passed (on a first run with gate.baseline_as_champion, the baseline that won instead), or wait
    for a person's approval (gate.approval=required). Returns the promotion and the approval's state."""
    gate_cfg, name = config.gate, registered.name
    if not gate_cfg.promote:
        return None, None
    baseline = verdict.baseline_version
    baseline_ok = bool(baseline) and not candidate_reasons(name, baseline, stage.tracking)
    if gate_cfg.approval == "required":
        if found := candidate(verdict, baseline_ok, gate_cfg.baseline_as_champion):
            state, promotion = await_approval(name, *found, stage.tracking, gate_cfg.approval_timeout)
            return promotion, state
        return None, None
    if verdict.passed:
        return stage(promote, gate_cfg.retry, name, registered.version, stage.tracking, cache=False), None
    if verdict.champion_version is None and verdict.baseline_version and gate_cfg.baseline_as_champion:
        return stage(promote_baseline, gate_cfg.retry, name, verdict, stage.tracking, cache=False), None
    return None, None


def _finish(config: PipelineConfig, stage: _Stages, **outputs) -> PipelineResult:
    """The flow's result, its summary artifact, and a run name and state message that say how it ended."""
    data, verdict = outputs["data"], outputs["verdict"]
    baseline = verdict.baseline_version
    result = PipelineResult(
        task=config.task,
        baseline_reasons=candidate_reasons(verdict.model, baseline, stage.tracking) if baseline else None,
        sample_text=kind(config.task).sample_text(data),
        reused_stages=stage.reused,
        mlflow_run_id=stage.run_id,
        tracking_uri=stage.tracking.uri,
        workspace=stage.ws.root,
        flow_run_id=flow_run_id(),
        **outputs,
    )
    reporting.markdown("pipeline-summary", summary_markdown(result), description="What this run produced")
    mark_flow_run(f"pipeline · {result.title} · {result.outcome}", [result.outcome])
    said = f"is the new champion, gate {verdict.headline}" if result.promoted else f"gate {verdict.headline}"
    if result.baseline_promoted:
        said += f"; the TF-IDF baseline v{baseline} is the first champion (gate.baseline_as_champion)"
    if result.approval in ("pending", "rejected"):
        said += "; waits for approval (zero2one approve)" if result.approval == "pending" else "; rejected"
    return completed(result, f"{result.title} {said}")


def _parent_run(registered: RegisteredModel, report, verdict: GateVerdict, tracking: Tracking) -> dict:
    """The parent MLflow run's name, headline metrics and note: the runs table compares runs without opening them."""
    metrics = kind_of(report).headline(report) | {
        "gate_passed": float(verdict.passed),
        f"gate_{verdict.metric}": getattr(verdict.challenger, verdict.metric),
    }
    link = f"[{registered.name} v{registered.version}]({tracking.ui_url}/#/models/{registered.name}/versions/"
    note = f"{link}{registered.version}): gate {verdict.headline}"
    if run := flow_run_id():
        note += f"  \n[Prefect flow run]({prefect_run_url(run)})"
    return {
        "metrics": metrics,
        "name": f"{registered.name} v{registered.version}",
        "tags": {GATE_VERDICT: "passed" if verdict.passed else "failed", "zero2one.model_version": registered.version},
        "note": note,
    }


def summary_markdown(result: PipelineResult) -> str:
    reg = result.registered
    return (
        f"# {reg.name} v{reg.version} ({', '.join(result.aliases)})\n\n"
        f"{reporting.md_table(kind(result.task).comparison_rows(result.evaluation))}\n\n"
        f"Evaluation {'passed' if result.evaluation.passed else 'failed: ' + '; '.join(result.evaluation.reasons)}"
        f"  \nGate {result.gate_summary}"
        f'\n\nLoad it: `mlflow.pyfunc.load_model("{reg.model_uri}")`  \n'
        f"Reused from earlier runs: {', '.join(result.reused_stages) or 'nothing'}\n"
        f"{_training_lines(result)}"
    )


def _training_lines(result: PipelineResult) -> str:
    """Which fine-tune recipe ran, and what the search chose (when it ran)."""
    lines = []
    if recipe := getattr(result.model, "recipe", None):  # a classifier's recipe (a generator's is in its plan)
        lines.append(f"Fine-tune recipe: {recipe}  ")
    if t := result.tuned:
        p = t.best_params
        lines.append(
            f"Tuned over {t.n_complete} of {t.n_trials} trials (best validation {t.metric} {t.best_value:.4f}): "
            f"learning rate {p['learning_rate']:.3g}, {p['epochs']} epochs, batch size {p['batch_size']}, "
            f"warmup ratio {p['warmup_ratio']:.3f}  "
        )
    return "".join(f"{line}\n" for line in lines)
