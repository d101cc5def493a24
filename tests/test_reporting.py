"""Artifacts are for people: no 17-digit floats, no `129.0000`, no `True`/`None`."""

from core.reporting import md_table, readable


def test_values_are_made_readable():
    assert readable(0.48333333333333334) == 0.4833
    assert readable(129.0) == 129
    assert readable(True) == "yes" and readable(False) == "no"
    assert readable(None) == "-"
    assert readable("v1") == "v1"


def test_markdown_tables_use_readable_values():
    text = md_table([{"precision": 0.48333333333333334, "support": 129.0, "passed": True, "reason": None}])
    assert text.splitlines()[-1] == "| 0.4833 | 129 | yes | - |"
