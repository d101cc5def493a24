"""The flow-level alerts of deployments/automations.yaml as Prefect automations, applied by `zero2one deploy`.

The file is Prefect's own automation schema, so it means what Prefect's documentation says; the only thing filled
in here is where notifications go (a notification block chosen at deploy time, not committed to the repository).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parent.parent
AUTOMATIONS_FILE = ROOT / "deployments" / "automations.yaml"


class AutomationsError(RuntimeError):
    """The file, or the block it should notify, is wrong: what and where."""


def automation_specs(path: Path = AUTOMATIONS_FILE, notify_block_id=None) -> list:
    """The file's automations, validated; `send-notification` actions go to `notify_block_id` (None: do-nothing)."""
    from prefect.events.schemas.automations import AutomationCore

    try:
        entries = (yaml.safe_load(path.read_text()) or {}).get("automations") or []
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise AutomationsError(f"{path}: cannot be read as a mapping with 'automations': {e}") from None
    specs = []
    for i, entry in enumerate(entries):
        name = entry.get("name", f"automation #{i + 1}") if isinstance(entry, dict) else f"automation #{i + 1}"
        try:
            actions = [_notify(a, notify_block_id) for a in entry.get("actions") or []]
            specs.append(AutomationCore.model_validate({**entry, "actions": actions}))
        except (ValidationError, AttributeError, TypeError) as e:
            raise AutomationsError(f"{path}: {name}: {e}") from None
    return specs


def _notify(action: dict, block_id) -> dict:
    if action.get("type") != "send-notification":
        return action
    return {**action, "block_document_id": str(block_id)} if block_id else {"type": "do-nothing"}


def notification_block_id(slug: str):
    """The id of block `<block-type>/<name>` (e.g. slack-webhook/zero2one-alerts)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    block_type, _, name = slug.partition("/")
    if not (block_type and name):
        raise AutomationsError(f"--notify {slug}: expected <block-type>/<block-name>, e.g. slack-webhook/team")
    with get_client(sync_client=True) as client:
        try:
            return client.read_block_document_by_name(name, block_type).id
        except ObjectNotFound:
            raise AutomationsError(
                f"--notify {slug}: no such block on the server; create it in the UI (Blocks) or with "
                f"`prefect block create {block_type}`"
            ) from None


def ensure_automations(path: Path = AUTOMATIONS_FILE, notify: str | None = None) -> dict[str, str]:
    """Create each automation missing on the server, update those that differ; name -> created/updated/unchanged."""
    from prefect import get_client

    specs = automation_specs(path, notification_block_id(notify) if notify else None)
    done = {}
    with get_client(sync_client=True) as client:
        for spec in specs:
            found = client.read_automations_by_name(spec.name)
            if not found:
                client.create_automation(spec)
                done[spec.name] = "created"
                continue
            have = found[0]
            same = have.trigger.model_dump(exclude={"id"}) == spec.trigger.model_dump(exclude={"id"})
            if same and have.actions == spec.actions and have.description == spec.description and have.enabled:
                done[spec.name] = "unchanged"
            else:
                client.update_automation(have.id, spec)
                done[spec.name] = "updated"
    return done
