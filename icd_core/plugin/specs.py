"""Component specs: ``sparsity:2:4``, ``quant:int4:g32``, ``kv:block=128:drop=0.1`` or a mapping.

The same parser serves the CLI and config files. Positional values fill the component's
``positional`` option names in order; ``key=value`` sets an option by name. An options class
may define ``from_spec_args(args) -> dict`` to read positional forms of its own (``g32``).
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from icd_core.contract.converter import structure, unstructure
from icd_core.contract.errors import ConfigError
from icd_core.plugin.registry import Registry


@attrs.frozen
class ComponentSpec:
    """A selected component: kind, name and its validated options (or ``None``)."""

    kind: str
    name: str
    options: Any = None
    text: str = ""

    def key(self) -> str:
        """A canonical string of name + every option value (used in version tags)."""
        opts = unstructure(self.options) if self.options is not None else {}
        return json.dumps({"kind": self.kind, "name": self.name, "options": opts}, sort_keys=True)

    def __str__(self) -> str:
        return self.text or self.name


def parse_scalar(text: str) -> Any:
    """``"2"`` → 2, ``"0.1"`` → 0.1, ``"true"`` → True, ``"none"`` → None, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def segments(text: str) -> list[str]:
    """``text`` split on ``:``, except after a ``re`` that begins a value or a list item:
    ``quant:int4:ignore=re:.*o_proj,re:.*q_proj`` keeps each ``re:`` pattern whole."""
    out: list[str] = []
    for part in text.split(":"):
        if out and "=" in out[-1] and re.search(r"(=|,)re$", out[-1]):
            out[-1] += ":" + part
        else:
            out.append(part)
    return out


def split_spec(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"name:a:k=v"`` → (name, [a], {k: v}) with scalars typed."""
    name, *args = segments(text)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for arg in args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            if key.strip() in keywords:
                raise ConfigError(f"{text}: option {key.strip()!r} given twice")
            keywords[key.strip()] = parse_scalar(value)
        elif keywords:
            raise ConfigError(f"{text}: positional value {arg!r} after key=value options")
        else:
            positional.append(parse_scalar(arg))
    return name.strip(), positional, keywords


def _as_choice(options: type, key: str, value: Any, raw: str | None) -> Any:
    """A spec value read as ``None`` (``none``/``null``) or a number, kept as the text when the
    option is a choice that lists that text (``permute=none`` is the choice 'none')."""
    if raw is None or isinstance(value, str) or not attrs.has(options):
        return value
    field = attrs.fields_dict(attrs.resolve_types(options)).get(key)
    if field is None:
        return value
    return raw if raw in _literals(field.type) else value


def _literals(tp: Any) -> list[Any]:
    """The values a ``Literal[...]`` type (or a union holding some) admits."""
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    return [c for arm in typing.get_args(tp) for c in _literals(arm)]


def resolve(registry: Registry, kind: str, raw: str | Mapping[str, Any], *,
            where: str = "", prefix: str | None = None) -> ComponentSpec:
    """Look ``raw`` up in ``registry`` and validate its options into the component's class."""
    raw_text: dict[str, str] = {}
    if isinstance(raw, str):
        name, positional, keywords = split_spec(raw)
        raw_text = {k.strip(): v.strip() for k, v in (a.split("=", 1) for a in segments(raw)[1:] if "=" in a)}
        text = raw
    elif isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        name = raw["name"]
        positional, keywords = [], {k: v for k, v in raw.items() if k != "name"}
        text = ":".join([name] + [f"{k}={v}" for k, v in keywords.items()])
    else:
        head = f"{where}: " if where else ""
        raise ConfigError(f"{head}{prefix or kind}: expected 'name:option…' or a table with 'name', "
                          f"got {raw!r}")
    component = registry.get(kind, name)
    label = prefix or name
    head = f"{where}: " if where else ""
    if component.options is None:
        if positional or keywords:
            raise ConfigError(f"{head}{label}: {kind} {name!r} takes no options")
        return ComponentSpec(kind=kind, name=name, options=None, text=text)
    from_args = getattr(component.options, "from_spec_args", None)
    if positional and from_args is not None:
        try:
            data = dict(from_args(positional))
        except ValueError as exc:
            raise ConfigError(f"{head}{label}: {exc}") from None
    else:
        if len(positional) > len(component.positional):
            expected = ", ".join(component.positional) or "none"
            raise ConfigError(f"{head}{label}: too many positional values {positional} "
                              f"(expected: {expected})")
        data = dict(zip(component.positional, positional))
    clash = set(data) & set(keywords)
    if clash:
        raise ConfigError(f"{head}{label}: {sorted(clash)} given twice")
    data.update({k: _as_choice(component.options, k, v, raw_text.get(k)) for k, v in keywords.items()})
    options = structure(data, component.options, where=where, prefix=label)
    return ComponentSpec(kind=kind, name=name, options=options, text=text)
