"""A permutation cache keyed by version tag: the same inputs reuse the same π.

Key material: workload, graph source and W digest, the transform chain so far, solver
spec and settings, seed, group and stage. Results that hit a time budget are not cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .artifacts import write_text_atomic
from .jsonutil import dumps
from .records import FitResult


def version_tag(*parts: str) -> str:
    """``sha256`` over the parts (e.g. model + task + S/Q/K spec + seed)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


def matrix_digest(m: sp.csr_matrix) -> str:
    h = hashlib.sha256()
    for arr in (m.indptr, m.indices, m.data, np.asarray(m.shape)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


class PermutationCache:
    """JSON files ``<dir>/<tag>.json`` holding π and the solver's stats."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get(self, tag: str) -> FitResult | None:
        if self.directory is None:
            return None
        path = self.directory / f"{tag}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return FitResult(perm=np.asarray(data["perm"], dtype=np.int32), stats=data["stats"])
        except (OSError, ValueError, KeyError):
            return None  # a miss, or an unreadable entry that will be rewritten

    def put(self, tag: str, fit: FitResult) -> None:
        if self.directory is None or fit.stats.get("timed_out"):
            return
        write_text_atomic(self.directory / f"{tag}.json", dumps({"perm": fit.perm, "stats": fit.stats}))
