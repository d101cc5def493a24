"""Moves of `champion` made behind zero2one's back (the MLflow UI, a script with MlflowClient) join its history.

MLflow issue #2169: an alias moved in the UI leaves no trace a team can read later. zero2one's own moves append a
record to the promotion history (tasks/registry/promotion.py) right after they set the alias; a registry webhook about a
move that no record explains within a grace period was made outside zero2one, and is recorded as such, with the
time MLflow sent it (MLflow's webhook payload names no user). `previous-champion` follows, so `zero2one rollback`
undoes the outside move like any other.
"""

from __future__ import annotations

import time

from core.registry_names import CHAMPION, HISTORY_PREFIX, PREVIOUS_CHAMPION, PROMOTED_EVENT, model_resource_id
from core.tracking import Tracking
from tasks.registry.promotion import history, history_run
from tasks.results.registry import Promotion

OUTSIDE = "moved outside zero2one"


def record_outside_move(
    model: str, version: str, tracking: Tracking, at: str, grace_seconds: float = 5.0
) -> Promotion | None:
    """Append a history record for `champion` -> `version` unless zero2one made that move (None then)."""
    client = tracking.client()
    deadline = time.monotonic() + grace_seconds
    while True:
        past = history(model, tracking)
        if past and past[-1].version == version:
            return None  # zero2one's own move (or one already recorded)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # a promotion sets the alias first and writes its record right after
    aliases = {a: str(v) for a, v in client.get_registered_model(model).aliases.items()}
    if aliases.get(CHAMPION) != version:
        return None  # moved again since: that move has its own event
    previous = past[-1].version if past else None
    move = Promotion(
        model=model,
        version=version,
        previous_version=previous,
        action="promote",
        forced=True,  # no gate was asked
        reason=f"{OUTSIDE} (MLflow registry webhook, {at})",
        seq=(past[-1].seq if past else 0) + 1,
        at=at,
    )
    client.set_tag(history_run(client, tracking, model), f"{HISTORY_PREFIX}{move.seq:06d}", move.record())
    if previous and previous != version:
        client.set_registered_model_alias(model, PREVIOUS_CHAMPION, previous)
    _announce(move)
    return move


def _announce(move: Promotion) -> None:
    """The same `zero2one.model.promoted` event zero2one's moves emit, where a Prefect server is configured."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return
    from prefect.events import emit_event

    emit_event(
        event=PROMOTED_EVENT,
        resource={"prefect.resource.id": model_resource_id(move.model), "prefect.resource.name": move.model},
        payload={"model": move.model, "version": move.version, "previous_version": move.previous_version}
        | {"action": move.action, "forced": True, "reason": move.reason, "seq": move.seq},
    )
