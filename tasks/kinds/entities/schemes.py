"""Tag schemes (BIO/IOB2, IOB1, BIOES/BILOU, BMES) converted to IOB2, the one scheme seqeval and the model use."""

from __future__ import annotations

from collections.abc import Callable

SCHEMES = ("IOB2", "IOB1", "BIOES", "BMES")
# Per scheme: source prefix -> IOB2 prefix. BIOES also arrives as BILOU (L = last, U = unit).
_PREFIX = {
    "IOB2": {"B": "B", "I": "I"},
    "IOB1": {"B": "B", "I": "I"},
    "BIOES": {"B": "B", "I": "I", "E": "I", "S": "B", "L": "I", "U": "B"},
    "BMES": {"B": "B", "M": "I", "E": "I", "S": "B"},
}


class TagError(ValueError):
    """A tag the scheme or the declared types do not allow; the message names the place and the value."""


def split_tag(tag: str) -> tuple[str, str]:
    """'B-person' -> ('B', 'person'); 'O' -> ('O', ''). Raises TagError on a tag with no type."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or len(prefix) != 1:
        raise TagError(f"tag {tag!r} is neither 'O' nor PREFIX-TYPE")
    return prefix, kind


def detect_scheme(tags: list[str]) -> str:
    """The scheme the prefixes imply: M -> BMES; E/S/L/U -> BIOES; else IOB2 (IOB1 must be declared)."""
    prefixes = {t.partition("-")[0] for t in tags if t != "O"}
    if "M" in prefixes:
        return "BMES"
    if prefixes & {"E", "S", "L", "U"}:
        return "BIOES"
    return "IOB2"


def to_iob2(
    tags: list[str],
    scheme: str,
    repair: bool,
    where: Callable[[int], str],
    types: set[str] | None = None,
) -> list[str]:
    """Convert one sentence's tags to IOB2.

    An inside tag whose previous tag is not of its type (an orphan `I-X`) becomes `B-X` when `repair` is set (IOB1
    always does this: it is that scheme's rule); otherwise a TagError names `where(i)` and the tag.
    """
    table = _PREFIX[scheme]
    out: list[str] = []
    for i, tag in enumerate(tags):
        try:
            prefix, kind = split_tag(tag)
        except TagError as exc:
            raise TagError(f"{where(i)}: {exc}") from None
        if prefix == "O":
            out.append("O")
            continue
        if prefix not in table:
            raise TagError(f"{where(i)}: tag {tag!r} has prefix {prefix!r}, not one of {scheme}'s {sorted(table)}")
        if types is not None and kind not in types:
            raise TagError(f"{where(i)}: tag {tag!r} has type {kind!r}, not one of the declared {sorted(types)}")
        new = table[prefix]
        if new == "I" and (not out or out[-1] == "O" or split_tag(out[-1])[1] != kind):
            if not (repair or scheme == "IOB1"):
                before = tags[i - 1] if i else "the sentence start"
                raise TagError(f"{where(i)}: {tag!r} follows {before!r}, no entity of type {kind!r} to continue")
            new = "B"
        out.append(f"{new}-{kind}")
    return out
