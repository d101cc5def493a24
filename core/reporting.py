"""Prefect artifacts that summarise each stage in the UI.

The stage functions call these unconditionally; outside a Prefect run (a plain call in a test
or a benchmark) they do nothing, so the functions stay usable without a server.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("zero2one")


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def _key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def logger():
    """Prefect's run logger inside a run (shows in the UI), the `zero2one` logger outside."""
    if _in_prefect_run():
        from prefect.logging import get_run_logger

        return get_run_logger()
    return log


def markdown(key: str, text: str, description: str | None = None) -> None:
    if _in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=text, key=_key(key), description=description)


def readable(value: object) -> object:
    """A value as people read it: 4 decimals at most, whole numbers without decimals, yes/no, a dash for nothing.

    Artifacts and logs are for people; MLflow metrics keep full precision.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 1e15 else round(value, 4)
    return value


def table(key: str, rows: list[dict], description: str | None = None) -> None:
    if _in_prefect_run():
        from prefect.artifacts import create_table_artifact

        rows = [{k: readable(v) for k, v in row.items()} for row in rows]
        create_table_artifact(table=rows, key=_key(key), description=description)


def link(key: str, url: str, text: str, description: str | None = None) -> None:
    if _in_prefect_run():
        from prefect.artifacts import create_link_artifact

        create_link_artifact(link=url, link_text=text, key=_key(key), description=description)


def md_table(rows: list[dict]) -> str:
    """A markdown table from a list of same-keyed dicts, values made `readable`."""
    if not rows:
        return "_(empty)_"
    cols = list(rows[0])

    def cell(value: object) -> str:  # a label is data: a '|' or a line break in it must not break the table
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(readable(r.get(c, ""))) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
