"""The prediction log on a real S3 server (SeaweedFS, 127.0.0.1, ~2 s to start): a reader that stays up sees what
other processes append after its first read. s3fs caches directory listings per client, and fsspec hands the same
client to every call in a process, so without `refresh` a second read_window returned the first read's files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pandas as pd
import pytest

from core.prediction_log import append_predictions, read_window
from tests.conftest import ROOT
from tests.servers import SeaweedS3


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in server.env.items():
                mp.setenv(key, value)
            yield server
    finally:
        server.stop()


def _rows(*texts: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": list(texts), "label": "ham", "score": 0.9, "probs": "{}", "model_name": "m", "model_version": "1"}
    )


def _append_elsewhere(uri: str, text: str, when: pd.Timestamp) -> None:
    """append_predictions in another process (a serving replica): its own S3 client, its own listings."""
    code = (
        "import sys, pandas as pd; from core.prediction_log import append_predictions; "
        "append_predictions(sys.argv[1], [dict(text=sys.argv[2], timestamp=sys.argv[3], label='ham', score=0.9, "
        "probs='{}', model_name='m', model_version='1')])"
    )
    subprocess.run([sys.executable, "-c", code, uri, text, when.isoformat()], check=True, cwd=ROOT, timeout=120)


def test_a_long_lived_reader_sees_rows_other_processes_append(s3):
    uri = f"s3://{s3.bucket}/workspace/predictions"
    now = pd.Timestamp.now(tz="UTC")
    append_predictions(uri, _rows("a", "b"))
    assert sorted(read_window(uri)["text"]) == ["a", "b"]  # this process's client now holds the listings
    _append_elsewhere(uri, "c", now)  # a new file in a day folder this process has listed
    _append_elsewhere(uri, "d", now + pd.Timedelta(days=1))  # a day folder it has not seen
    assert sorted(read_window(uri)["text"]) == ["a", "b", "c", "d"]
