"""attrs validators whose messages read well after a dotted path (``must be > 0 (got -1)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from icd_core.contract.converter import FieldError

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _optional(check: Callable[[Any], str | None]) -> Validator:
    def validate(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        problem = check(value)
        if problem:
            raise FieldError(attribute.name, f"{problem} (got {value!r})")

    return validate


def positive() -> Validator:
    """Value > 0 (None allowed: it means "use the default")."""
    return _optional(lambda v: None if v > 0 else "must be > 0")


def non_negative() -> Validator:
    """Value >= 0."""
    return _optional(lambda v: None if v >= 0 else "must be >= 0")


def between(lo: float, hi: float) -> Validator:
    """lo <= value <= hi."""
    return _optional(lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}")


def power_of_two() -> Validator:
    """A positive power of two (cache-line element counts, block sizes)."""
    return _optional(lambda v: None if v > 0 and v & (v - 1) == 0 else "must be a power of two")

