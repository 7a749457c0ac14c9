"""JSON that understands numpy scalars/arrays, attrs records and paths."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from icd_core.contract.converter import unstructure


def jsonable(obj: Any) -> Any:
    """A ``json.dumps`` ``default=`` hook; non-finite floats become ``null``."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if attrs.has(type(obj)):
        return unstructure(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Deterministic JSON (sorted keys, NaN → null)."""
    plain = json.loads(json.dumps(obj, default=jsonable))
    return json.dumps(_clean(plain), indent=indent, sort_keys=True, allow_nan=False)
