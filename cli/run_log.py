"""The run's log file: everything, tracebacks included, under the workspace; the console keeps the messages."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path


class _OneLine(logging.Formatter):
    """Formats a record as `inner` would, without its traceback (that goes to the run's log file)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


@contextlib.contextmanager
def run_log(log_dir: Path, verbose: bool) -> Iterator[Path]:
    """Everything the run logs, tracebacks included, in a file under the workspace; the console keeps the
    messages and drops the tracebacks (a bad input is one `error:` line, not 35 frames), unless `verbose`.
    Call after Prefect is imported: its console handler is the one that gets quieter."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(to_file)
    consoles = [h for h in root.handlers if type(h) is not logging.FileHandler] if not verbose else []
    saved = [h.formatter for h in consoles]
    for handler in consoles:
        handler.setFormatter(_OneLine(handler.formatter))
    try:
        yield path
    finally:
        for handler, formatter in zip(consoles, saved, strict=True):
            handler.setFormatter(formatter)
        root.removeHandler(to_file)
        to_file.close()
