"""Bounds on what icd reads, checked before reading: a hostile or mistaken input costs one error
line, never the machine's memory or an unbounded wait.

Every limit has a default and an environment variable ``ICD_LIMIT_<NAME>`` (an integer) that
replaces it, e.g. ``ICD_LIMIT_TRACE_BYTES=8589934592`` for an 8 GiB trace:

=================  ===========  ============================================================
name               default      bounds
=================  ===========  ============================================================
config_bytes       8 MiB        a YAML / JSON / TOML config or constraints file
trace_bytes        1 GiB        a JSONL access trace
json_bytes         256 MiB      a run's metrics.json / events.jsonl, a sweep manifest or trial file
npz_bytes          2 GiB        the uncompressed members of a W.npz together
yaml_nodes         100000       nodes a YAML document expands to (aliases counted each time)
nesting            64           depth of nested mappings / lists in a config
trials             10000        trials one sweep may plan
tokenizer_bytes    64 MiB       one tokenizer file of a model directory (tokenizer.json, vocab…)
text_bytes         64 MiB       a calibration or evaluation text file
model_excess_bytes 256 MiB      float32 bytes a model may hold beyond its checkpoint's tensors
=================  ===========  ============================================================
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from icd_core.contract.errors import IcdError, InputDataError

MIB = 1 << 20
DEFAULTS = {"config_bytes": 8 * MIB, "trace_bytes": 1024 * MIB, "json_bytes": 256 * MIB,
            "npz_bytes": 2048 * MIB, "yaml_nodes": 100_000, "nesting": 64, "trials": 10_000,
            "tokenizer_bytes": 64 * MIB, "text_bytes": 64 * MIB, "model_excess_bytes": 256 * MIB}


def limit(name: str) -> int:
    """The limit ``name``: ``ICD_LIMIT_<NAME>`` when set to a positive integer, else the default."""
    raw = os.environ.get(f"ICD_LIMIT_{name.upper()}")
    if raw is None:
        return DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise IcdError(f"ICD_LIMIT_{name.upper()}={raw!r}: expected a positive integer")
    return value


def article(noun: str) -> str:
    """``a`` or ``an`` before ``noun`` (by its first letter)."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def regular_file(path: str | Path, what: str, error: type[IcdError] = InputDataError) -> Path:
    """``path`` if it names a regular file (symlinks followed); else one ``error`` line saying
    what it is instead (missing, a directory, a FIFO, a device)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise error(f"{p}: is {kind}; expected {article(what)} {what} (a regular file)")
    return p


def read_bytes(path: str | Path, what: str, name: str, error: type[IcdError] = InputDataError) -> bytes:
    """The bytes of a regular file no larger than the limit ``name`` (checked before reading,
    and again while reading, for a file that grows)."""
    p = regular_file(path, what, error)
    cap = limit(name)
    size = p.stat().st_size
    if size > cap:
        raise error(f"{p}: {what} is {size:,} bytes, over the {cap:,}-byte limit (ICD_LIMIT_{name.upper()})")
    try:
        with open(p, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError as exc:
        raise error(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise error(f"{p}: {what} grew past the {cap:,}-byte limit while being read (ICD_LIMIT_{name.upper()})")
    return data


def read_text(path: str | Path, what: str, name: str, error: type[IcdError] = InputDataError) -> str:
    """:func:`read_bytes` decoded as UTF-8 (one line naming the first bad byte otherwise)."""
    data = read_bytes(path, what, name, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    f"expected {article(what)} {what}") from None


def read_json(path: str | Path, what: str, name: str, error: type[IcdError] = InputDataError) -> Any:
    """:func:`read_text` parsed as JSON; a syntax error or runaway nesting is one line naming the file."""
    try:
        return json.loads(read_text(path, what, name, error))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be {article(what)} {what}") from None
