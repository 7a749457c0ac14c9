"""Reading configs from YAML / JSON / TOML, ``--set key.path=value`` overrides, printing."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from icd_core.config.schema import Config
from icd_core.contract.converter import structure, unstructure
from icd_core.contract.errors import ConfigError
from icd_core.contract.limits import limit, read_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-30`` is a float (YAML
    1.1 wants ``1.0e-30`` and would return the string "1e-30")."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."))


def _construct_mapping(loader: Yaml12Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping, refusing a key given twice (PyYAML would keep the last one silently)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


Yaml12Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                             lambda loader, node: _construct_mapping(loader, node))


def yaml_bounds_problem(text: str) -> str | None:
    """Why a YAML text is too big to build (more nodes than ``limits.yaml_nodes`` once every
    alias is expanded — a "billion laughs" — or nested deeper than ``limits.nesting``), from
    its events alone, before any object is built; None when it is within bounds."""
    max_nodes, max_depth = limit("yaml_nodes"), limit("nesting")
    anchored: dict[str, int] = {}
    stack: list[list] = []  # per open collection: [anchor, node count]
    total = 0
    for event in yaml.parse(text, Loader=Yaml12Loader):
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            size = anchored.get(event.anchor, 1) if isinstance(event, yaml.AliasEvent) else 1
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                anchored[event.anchor] = 1
            if stack:
                stack[-1][1] += size
            else:
                total += size
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > max_depth:
                return f"nested more than {max_depth} levels deep (ICD_LIMIT_NESTING)"
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, size = stack.pop()
            if anchor:
                anchored[anchor] = size
            if stack:
                stack[-1][1] += size
            else:
                total += size
        if total + sum(size for _, size in stack) > max_nodes:
            return (f"expands to more than {max_nodes:,} nodes once its aliases are resolved "
                    f"(ICD_LIMIT_YAML_NODES)")
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``json`` would keep the last one silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"key {key!r} appears twice in one object")
        data[key] = value
    return data


def _json_depth_problem(text: str) -> str | None:
    """Nesting deeper than ``limits.nesting`` in JSON text (brackets outside strings)."""
    depth, deepest, in_string, escaped = 0, 0, False, False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    cap = limit("nesting")
    return f"nested more than {cap} levels deep (ICD_LIMIT_NESTING)" if deepest > cap else None


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a config file by extension into a mapping (one clear error line on failure);
    its size, nesting and YAML alias expansion are bounded (:mod:`icd_core.contract.limits`)."""
    p = Path(path)
    raw = read_bytes(p, "config file", "config_bytes", ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text config (byte 0x{raw[exc.start]:02x} at offset {exc.start} is not "
                          f"UTF-8); expected YAML, JSON or TOML text") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: not a text config (it contains NUL bytes); expected YAML, JSON or TOML text")
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            problem = yaml_bounds_problem(text)
            if problem:
                raise ConfigError(f"{p}: {problem}")
            data = yaml.load(text, Loader=Yaml12Loader)
        elif suffix == ".json":
            problem = _json_depth_problem(text)
            if problem:
                raise ConfigError(f"{p}: {problem}")
            data = json.loads(text, object_pairs_hook=_unique_keys)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"{p}: unknown config format {suffix!r} (expected .yaml, .yml, .json or .toml)")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{p}: {where}invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{p}: unreadable value ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a table of keys, got {type(data).__name__}")
    return data


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_path(d, "solver.time_budget_s", 5)`` — creates intermediate tables."""
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(keys[: i + 1])} is not a table")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` → ("a.b", [1, 2]); the value is read as a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: empty key")
    try:
        problem = yaml_bounds_problem(raw) if raw.strip() else None
        value = yaml.load(raw, Loader=Yaml12Loader) if raw.strip() else ""
    except yaml.YAMLError:
        problem, value = None, raw
    if problem:
        raise ConfigError(f"--set {key}: the value {problem}")
    return key, value


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                cli: Mapping[str, Any] | None = None) -> Config:
    """Defaults ← file ← CLI options (dotted keys) ← ``--set`` overrides, validated."""
    data: dict[str, Any] = read_file(path) if path else {}
    if path:
        structure(data, Config, where=str(path))
    for key, value in (cli or {}).items():
        set_path(data, key, value)
    sets = [parse_override(text) for text in overrides]
    for key, value in sets:
        set_path(data, key, value)
    where = "--set" if sets else (str(path) if path else "options")
    return structure(data, Config, where=where)


def config_to_dict(config: Config) -> dict[str, Any]:
    return unstructure(config)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
