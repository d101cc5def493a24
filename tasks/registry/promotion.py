"""The promote stage: move the `champion` alias, remember the one it replaced, tell whoever listens.

- `promote` points `champion` at a version that passed the gate (or at any version with
  `force` and a reason). The replaced champion gets the `previous-champion` alias, so
  `rollback` is one step: it swaps the two back.
- Promotions of one model are serialized by a Prefect global concurrency limit
  (`zero2one-promote-<model>`, one slot), so racing promotions from threads, processes or
  machines that share the Prefect server end with one champion and an unbroken history.
- History: one tag per move, `zero2one.promotion.000001` = a JSON record (seq, action, version,
  previous_version, forced, reason, at, flow run), on the model's history run in MLflow (tagged
  `zero2one.history_of=<model>`), not on the registered model, whose page and list stay readable:
  the model gets a markdown description (who is champion, why, the last moves) and one
  `zero2one.champion` tag. Each record's `previous_version` is the version of the record before it,
  and `previous-champion` always equals the newest record's `previous_version`. Registries from
  before kept the records as registered-model tags; they are still read.
- Every move emits the Prefect event `zero2one.model.promoted` on resource
  `zero2one.model.<name>` (payload: model, version, previous_version, action, ...), for
  automations such as "reload serving".

`Promotion` is in `tasks/results.py`; the alias and event names in `core/registry_names.py`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from core import reporting
from core.errors import PipelineInputError
from core.registry_names import (
    CHAMPION,
    CHAMPION_TAG,
    GATE_VERDICT,
    HISTORY_OF,
    HISTORY_PREFIX,
    METRIC_MACRO_F1,
    PREVIOUS_CHAMPION,
    PROMOTED_EVENT,
    PROMOTION_REASON,
    PROMOTION_ROLLED_BACK_AT,
    PROMOTION_SINCE,
    failed_reasons,
    model_resource_id,
    read_tag,
)
from core.run_context import flow_run_id
from core.tracking import Tracking
from tasks.results.registry import GateVerdict, Promotion

VERDICT_TAG = GATE_VERDICT
LOCK_TIMEOUT_SECONDS = 120.0
# The version's approval (gate.approval=required, tasks/registry/approval.py): a pending one is promoted by its answer.
APPROVAL = "zero2one.approval"  # pending | approved | rejected
APPROVAL_REASON = "zero2one.approval.reason"  # the person's reason, or why it timed out
APPROVAL_BY = "zero2one.approval.by"


def promote(
    model: str,
    version: str,
    tracking: Tracking,
    force: bool = False,
    reason: str | None = None,
    approved: bool = False,
) -> Promotion:
    """Make `version` (a number or an alias such as `challenger`) the champion of `model`. A version waiting for
    approval moves only with its answer (`approved`, from tasks/registry/approval.py) or forced; forcing closes the
    wait."""
    reason = (reason or "").strip()
    if force and not reason:
        raise PipelineInputError(
            f"force=True for {model} version {version!r} needs a reason (--reason TEXT): "
            "a forced promotion skips the gate, and the history must say why"
        )
    client = tracking.client()
    target = _resolve(client, model, version)
    if not force and target.tags.get(VERDICT_TAG) != "passed":
        why = failed_reasons(target.tags)
        raise PipelineInputError(
            f"{model} version {target.version} has not passed the gate "
            f"({VERDICT_TAG}={target.tags.get(VERDICT_TAG, 'missing')}{': ' + '; '.join(why) if why else ''}). "
            "Promote it anyway with force=True and a reason (--force --reason TEXT)."
        )
    waiting = target.tags.get(APPROVAL) == "pending"
    if waiting and not (approved or force):
        raise PipelineInputError(
            f"{model} version {target.version} waits for approval (gate.approval=required): answer it with "
            f"`zero2one approve --model {model} --version {target.version} --reason TEXT` (or `zero2one reject`), "
            "or promote it anyway with --force --reason TEXT."
        )
    with model_lock(model):
        result = _move_champion(
            client, tracking, model, str(target.version), "promote", force, reason or "passed the gate"
        )
    if waiting and force and not approved:  # the wait is over: its tags say how it ended
        answer = {APPROVAL: "approved", APPROVAL_REASON: f"promoted with --force: {reason}", APPROVAL_BY: "forced"}
        for key, value in answer.items():
            client.set_model_version_tag(model, str(target.version), key, value)
    return _announce(result)


def rollback(model: str, tracking: Tracking, reason: str | None = None) -> Promotion:
    """Swap `champion` and `previous-champion`: the champion before the current one serves again."""
    client = tracking.client()
    with model_lock(model):
        previous = _aliases(client, model).get(PREVIOUS_CHAMPION)
        if previous is None:
            raise PipelineInputError(
                f"model {model!r} has no {PREVIOUS_CHAMPION!r} alias: there is nothing to roll back to"
            )
        result = _move_champion(
            client, tracking, model, previous, "rollback", False, (reason or "").strip() or "rollback"
        )
    if result.changed and result.previous_version:
        client.set_model_version_tag(model, result.previous_version, PROMOTION_ROLLED_BACK_AT, result.at)
    return _announce(result)


def promote_baseline(model: str, verdict: GateVerdict, tracking: Tracking) -> Promotion | None:
    """`gate.baseline_as_champion`: the TF-IDF baseline that beat a refused first challenger becomes champion.

    Only where its own verdict passed and no champion exists, checked under the model's lock (a champion that
    another run promoted meanwhile stays); the history says why. None, logged, where it does not apply.
    """
    version, client = verdict.baseline_version, tracking.client()
    failed = candidate_reasons(model, version, tracking) if version else ["no baseline version was registered"]
    if failed:
        reporting.logger().info("baseline v%s not promoted: %s", version, "; ".join(failed))
        return None
    reason = (
        "baseline promoted as first champion: the fine-tuned model "
        f"v{verdict.version} was refused because {'; '.join(verdict.reasons)}"
    )
    with model_lock(model):
        if (current := _aliases(client, model).get(CHAMPION)) is not None:
            reporting.logger().info("baseline v%s not promoted: v%s is the champion already", version, current)
            return None
        result = _move_champion(client, tracking, model, version, "promote", False, reason)
    return _announce(result)


def candidate_reasons(model: str, version: str, tracking: Tracking) -> list[str]:
    """Why `version` may not be promoted without --force ([]: its gate verdict passed)."""
    tags = _resolve(tracking.client(), model, version).tags
    if tags.get(VERDICT_TAG) == "passed":
        return []
    return failed_reasons(tags) or [f"{VERDICT_TAG}={tags.get(VERDICT_TAG, 'missing')}"]


def history(model: str, tracking: Tracking) -> list[Promotion]:
    """Every move of `champion`, oldest first."""
    return _history(tracking.client(), tracking, model)


@contextlib.contextmanager
def model_lock(model: str, timeout_seconds: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the one slot of the model's Prefect global concurrency limit (created on first use)."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = "zero2one-promote-" + re.sub(r"[/%&<>]", "-", model)
    # A racing promotion may create the limit between our read and our create: that is fine.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    # strict: a missing limit must fail, not silently run unlocked
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield


def _move_champion(
    client: MlflowClient, tracking: Tracking, model: str, version: str, action: str, forced: bool, reason: str
) -> Promotion:
    """Call with the model's lock held: reads the aliases, moves them, appends the history record."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    aliases = _aliases(client, model)
    current = aliases.get(CHAMPION)
    if current == version:
        return Promotion(
            model=model,
            version=version,
            previous_version=aliases.get(PREVIOUS_CHAMPION),
            action=action,
            forced=forced,
            reason=f"v{version} is the champion already",
            seq=None,
            at=now,
            changed=False,
        )
    client.set_registered_model_alias(model, CHAMPION, version)
    if current is not None:
        client.set_registered_model_alias(model, PREVIOUS_CHAMPION, current)
    elif PREVIOUS_CHAMPION in aliases:
        client.delete_registered_model_alias(model, PREVIOUS_CHAMPION)
    past = _history(client, tracking, model)
    result = Promotion(
        model=model,
        version=version,
        previous_version=current,
        action=action,
        forced=forced,
        reason=reason,
        seq=(past[-1].seq if past else 0) + 1,
        at=now,
        flow_run_id=flow_run_id(),
    )
    client.set_tag(history_run(client, tracking, model), f"{HISTORY_PREFIX}{result.seq:06d}", result.record())
    client.set_model_version_tag(model, version, PROMOTION_SINCE, now)
    client.set_model_version_tag(model, version, PROMOTION_REASON, f"{action}: {reason}")
    when = now.replace("T", " ")
    how = f"{action}{', forced' if forced else ''}"
    _status_line(client, model, version, f"**Champion** since {when}: {how}, {reason}.")
    if current is not None:
        _status_line(client, model, current, f"**Was champion** until {when} (v{version} replaced it).")
    _describe_model(client, model, [*past, result])
    return result


def _announce(result: Promotion) -> Promotion:
    """Emit the event automations react to, and show the move in the Prefect UI."""
    from prefect.events import emit_event

    if result.changed:
        event = emit_event(
            event=PROMOTED_EVENT,
            resource={"prefect.resource.id": model_resource_id(result.model), "prefect.resource.name": result.model},
            payload={
                "model": result.model,
                "version": result.version,
                "previous_version": result.previous_version,
                "action": result.action,
                "forced": result.forced,
                "reason": result.reason,
                "seq": result.seq,
                "model_uri": f"models:/{result.model}@{CHAMPION}",
            },
        )
        result = result.model_copy(update={"event_id": str(event.id) if event else None})
    moved = (
        f"`{CHAMPION}`: {_v(result.previous_version)} -> v{result.version} ({result.action}"
        f"{', forced' if result.forced else ''}): {result.reason}"
        if result.changed
        else result.reason
    )
    reporting.markdown(result.action, f"# {result.model}\n\n{moved}\n", description=f"{result.action} {result.model}")
    reporting.logger().info("%s %s: %s", result.action, result.model, moved)
    return result


_STATUS = re.compile(r"^\*\*(Champion|Was champion)\*\*[^\n]*\n\n")


def _status_line(client: MlflowClient, model: str, version: str, line: str) -> None:
    """Put `line` on top of the version's description (replacing an earlier champion line): its page says it first."""
    rest = _STATUS.sub("", client.get_model_version(model, version).description or "", count=1)
    client.update_model_version(model, version, description=f"{line}\n\n{rest}")


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def _aliases(client: MlflowClient, model: str) -> dict[str, str]:
    try:
        return {alias: str(v) for alias, v in client.get_registered_model(model).aliases.items()}
    except MlflowException:
        raise PipelineInputError(f"there is no registered model {model!r} in the MLflow registry") from None


def _resolve(client: MlflowClient, model: str, version: str) -> ModelVersion:
    _aliases(client, model)  # names a missing model before a missing version
    try:
        if version.isdigit():
            return client.get_model_version(model, version)
        return client.get_model_version_by_alias(model, version)
    except MlflowException:
        raise PipelineInputError(f"model {model!r} has no version or alias {version!r}") from None


def history_run(client: MlflowClient, tracking: Tracking, model: str, create: bool = True) -> str | None:
    """The MLflow run that holds `model`'s history (created on the first move; call with the model's lock held)."""
    experiment_id = tracking.activate()
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{HISTORY_OF}` = '{model}'", max_results=1, order_by=["start_time ASC"]
    )
    if found or not create:
        return found[0].info.run_id if found else None
    run = client.create_run(
        experiment_id,
        run_name=f"promotions of {model}",
        tags={HISTORY_OF: model, "zero2one.stage": "promotion-history"},
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _history(client: MlflowClient, tracking: Tracking, model: str) -> list[Promotion]:
    tags = dict(client.get_registered_model(model).tags)  # registries from before the history run
    if run_id := history_run(client, tracking, model, create=False):
        tags |= client.get_run(run_id).data.tags
    records = [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(HISTORY_PREFIX)]
    return [Promotion(model=model, **r) for r in records]


def _describe_model(client: MlflowClient, model: str, moves: list[Promotion]) -> None:
    """The registered model's description and `zero2one.champion` tag: who is champion and why, the last moves."""
    now = moves[-1]
    f1 = read_tag(client.get_model_version(model, now.version).tags, METRIC_MACRO_F1)
    score = f" (test macro-F1 {f1})" if f1 else ""
    rows = [
        f"| {m.seq} | {m.at.replace('T', ' ')} | {m.action}{' (forced)' if m.forced else ''} | "
        f"{_v(m.previous_version)} → v{m.version} | {m.reason} |"
        for m in reversed(moves[-5:])
    ]
    text = (
        f"**Champion: v{now.version}**{score} since {now.at.replace('T', ' ')}: {now.action}, {now.reason}.  \n"
        f"Serve it: `models:/{model}@{CHAMPION}`; roll back: `zero2one rollback --model {model}`.\n\n"
        "| # | when | move | champion | why |\n|---|---|---|---|---|\n" + "\n".join(rows)
    )
    client.update_registered_model(model, description=text)
    client.set_registered_model_tag(model, CHAMPION_TAG, f"v{now.version}{score}")
