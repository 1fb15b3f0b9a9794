"""CSV cells a spreadsheet would not run (SPEC §7): the one neutraliser exports call."""

from __future__ import annotations

# A text cell starting with one of these is evaluated as a formula (or starts one after
# a cell break) by spreadsheet programs, whatever follows.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """`text` as a CSV text cell that a spreadsheet shows rather than evaluates: a leading
    apostrophe before any formula start. Numbers the portal writes itself are not text
    cells and are not passed here."""
    if text and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text
