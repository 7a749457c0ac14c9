"""A permutation cache keyed by version tag: the same inputs reuse the same π.

Key material: workload, graph source and W digest, the transform chain so far, solver
spec, settings and code version (plugin version + source digest), seed, group and stage.
Results that hit a time budget are not cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from icd_core.contract.jsonify import dumps
from icd_core.contract.records import FitResult
from icd_core.run.artifacts import write_text_atomic
from icd_core.run.events import EventBus


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
    """JSON files ``<dir>/<tag>.json`` holding π and the solver's stats.

    Entries are validated on read: one that is unreadable or not a permutation of the right
    length is dropped with a warning (and solved again). A cache directory that cannot be
    used disables the cache for the run, with a warning; it never fails the run.
    """

    def __init__(self, directory: Path | None, bus: EventBus | None = None) -> None:
        self.directory = directory
        self.bus = bus

    @classmethod
    def at(cls, directory: Path | None, bus: EventBus) -> PermutationCache:
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                bus.warn(f"permutation cache {directory} unusable ({exc.strerror or exc}): running without it")
                directory = None
        return cls(directory, bus)

    def _drop(self, path: Path, why: str) -> None:
        if self.bus is not None:
            self.bus.warn(f"permutation cache entry {path.name} dropped: {why}")
        path.unlink(missing_ok=True)

    def get(self, tag: str, n: int) -> FitResult | None:
        """The cached fit for ``tag`` if it holds a valid permutation of ``n``, else None."""
        if self.directory is None:
            return None
        path = self.directory / f"{tag}.json"
        if not path.is_file():
            return None
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            perm = np.asarray(data["perm"])
            stats = data["stats"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._drop(path, f"unreadable ({type(exc).__name__})")
            return None
        if not isinstance(stats, dict) or perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer) \
                or not np.array_equal(np.sort(perm), np.arange(n)):
            self._drop(path, f"not a permutation of {n} entries")
            return None
        return FitResult(perm=perm.astype(np.int32), stats=stats)

    def put(self, tag: str, fit: FitResult) -> None:
        if self.directory is None or fit.stats.get("timed_out"):
            return
        try:
            write_text_atomic(self.directory / f"{tag}.json", dumps({"perm": fit.perm, "stats": fit.stats}))
        except OSError as exc:
            if self.bus is not None:
                self.bus.warn(f"permutation cache {self.directory}: cannot write ({exc.strerror or exc})")
