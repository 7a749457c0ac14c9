"""Cell formatting shared by every report format: numbers, mappings, paired changes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.IGNORECASE)


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with ``= + - @``, a tab or a CR
    gets a leading ``'`` (OWASP's advice); numbers, also negative ones, stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.match(value):
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """Rows as CSV text (``\\n`` line ends), every cell through :func:`spreadsheet_safe`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return buf.getvalue()


def signed(x: float) -> str:
    """``+1.23`` / ``-0.5`` / ``0`` (no signed zero)."""
    return "0" if x == 0 else f"{x:+.3g}"


def value_of(entry: dict[str, Any] | None) -> float | None:
    return None if not entry else entry.get("value")


def change_text(change: dict[str, Any] | None) -> str:
    """``-0.34 % [-1.0, +1.0]`` for a paired change, or ``""``."""
    if not change:
        return ""
    ci = change.get("ci95")
    interval = f" [{signed(ci[0])}, {signed(ci[1])}]" if ci else " (no CI)"
    return f"{signed(change['estimate'])} {change['unit']}{interval}".replace("  ", " ")


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value + 0.0:.{digits}g}"  # + 0.0: no signed zero
    return str(value)


def short_reason(reason: Any) -> str:
    """The head of a reason, for a table cell: ``"not measured (nvml: …)"`` → ``"not measured"``."""
    return str(reason or "no value").split(" (")[0].split(";")[0]
