"""Reading configs from YAML / JSON / TOML, ``--set key.path=value`` overrides, printing."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from icd_core.config.converter import structure, unstructure
from icd_core.config.schema import Config
from icd_core.contract.errors import ConfigError

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


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a config file by extension into a mapping (one clear error line on failure)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text config (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not "
                          f"UTF-8); expected YAML, JSON or TOML text") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: not a text config (it contains NUL bytes); expected YAML, JSON or TOML text")
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.load(text, Loader=Yaml12Loader)
        elif suffix == ".json":
            data = json.loads(text)
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
        value = yaml.load(raw, Loader=Yaml12Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
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
