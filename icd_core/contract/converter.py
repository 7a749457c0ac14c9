"""The one cattrs converter of icd, and errors that name the dotted path of the bad field.

Scalars are strict (``"3"`` is not an int, ``1`` is not a str); ``Literal`` and attrs
validator failures read ``solver.time_budget_s: must be > 0 (got -1.0)``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn

from icd_core.contract.errors import ConfigError

T = TypeVar("T")


class FieldError(ValueError):
    """Raised by icd validators; carries the attribute name so the path can end in it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _strict_scalar(kind: type, accepted: tuple[type, ...], label: str):
    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {label}, got a boolean ({value!r})")
        if not isinstance(value, accepted):
            raise ValueError(f"expected {label}, got {type(value).__name__} ({value!r})")
        return kind(value)

    return hook


def _structure_literal(value: Any, type_: Any) -> Any:
    allowed = typing.get_args(type_)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"must be one of {choices} (got {value!r})")
    return value


def _attrs_with_mapping_check(cl: type, converter: cattrs.Converter):
    inner = make_dict_structure_fn(cl, converter, _cattrs_forbid_extra_keys=True)

    def hook(value: Any, _type: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table of keys, got {type(value).__name__} ({value!r})")
        return inner(value, _type)

    return hook


def _list_factory(type_: Any, conv: cattrs.Converter):
    """Lists must be lists: a string is not read as a list of its characters."""
    inner = list_structure_factory(type_, conv)

    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"expected a list, got a string ({value!r}); write [{value!r}]")
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {type(value).__name__} ({value!r})")
        return inner(value, _type)

    return hook


def make_icd_converter() -> cattrs.Converter:
    """Build the converter (exposed so plugin tests can make their own)."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _strict_scalar(int, (int,), "an integer"))
    conv.register_structure_hook(float, _strict_scalar(float, (int, float), "a number"))
    conv.register_structure_hook(str, _strict_scalar(str, (str,), "a string"))
    conv.register_structure_hook(bool, _strict_scalar(bool, (bool,), "true or false"))
    conv.register_structure_hook_func(
        lambda t: typing.get_origin(t) is Literal, _structure_literal
    )
    conv.register_structure_hook_factory(attrs.has, lambda cl: _attrs_with_mapping_check(cl, conv))
    conv.register_structure_hook_factory(lambda t: typing.get_origin(t) is list, lambda t: _list_factory(t, conv))
    return conv


converter = make_icd_converter()


def _walk(exc: BaseException, path: str, out: list[str]) -> None:
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", None) or []
            step = ""
            for note in notes:
                name = getattr(note, "name", None)
                index = getattr(note, "index", None)
                if name is not None:
                    step = f".{name}"
                elif index is not None:
                    step = f"[{index}]"
            _walk(sub, path + step, out)
        return
    if isinstance(exc, ForbiddenExtraKeysError):
        known = ", ".join(a.name for a in attrs.fields(exc.cl))
        for key in sorted(exc.extra_fields):
            out.append(f"{_join(path, key)}: unknown key (expected one of: {known})")
        return
    if isinstance(exc, FieldError):
        out.append(f"{_join(path, exc.name)}: {exc}")
        return
    if isinstance(exc, KeyError):
        out.append(f"{path.lstrip('.') or '<root>'}: missing required key {exc}")
        return
    out.append(f"{path.lstrip('.') or '<root>'}: {exc}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}".lstrip(".")


def error_lines(exc: BaseException, prefix: str = "") -> list[str]:
    """Flatten a cattrs/attrs failure into ``dotted.path: message`` lines."""
    out: list[str] = []
    _walk(exc, "." + prefix if prefix else "", out)
    return out


def structure(data: Any, cl: type[T], *, where: str = "", prefix: str = "") -> T:
    """Structure ``data`` into ``cl`` or raise one :class:`ConfigError` naming every bad path.

    ``where`` names the source (a file, ``--set``, a spec string); ``prefix`` is the
    dotted path ``data`` sits at.
    """
    try:
        return converter.structure(data, cl)
    except (ClassValidationError, IterableValidationError, FieldError, ValueError, TypeError) as exc:
        lines = error_lines(exc, prefix)
        head = f"{where}: " if where else ""
        raise ConfigError(head + "; ".join(lines)) from None


def unstructure(obj: Any) -> Any:
    """attrs records → plain JSON-able data."""
    return converter.unstructure(obj)
