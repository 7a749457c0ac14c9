"""A set-associative LRU cache model, vectorised across sets.

Accesses are line addresses in time order. A line maps to set ``line % sets``; every set is an
independent LRU of ``ways`` lines, so the trace is split by set (time order kept) and all sets
advance in lockstep: step t handles the t-th access of every set with array operations. The
cost is (accesses / sets) steps of O(sets × ways) each — millions of accesses in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np


@attrs.frozen
class CacheGeometry:
    size_bytes: int
    line_bytes: int
    ways: int

    @property
    def sets(self) -> int:
        return max(1, self.size_bytes // (self.line_bytes * self.ways))


def simulate_lru(lines: np.ndarray, sets: int, ways: int) -> np.ndarray:
    """Hit (True) or miss for every access of ``lines`` (int line addresses, time order)."""
    lines = np.asarray(lines, dtype=np.int64)
    if lines.size == 0:
        return np.zeros(0, dtype=bool)
    set_of = lines % sets
    order = np.argsort(set_of, kind="stable")  # per set, time order kept
    counts = np.bincount(set_of, minlength=sets)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(lines.size) - np.repeat(starts, counts)
    steps = int(counts.max())
    schedule = np.full((sets, steps), -1, dtype=np.int64)
    schedule[set_of[order], rank] = lines[order]
    tags = np.full((sets, ways), -1, dtype=np.int64)
    last_use = np.zeros((sets, ways), dtype=np.int64)
    hits = np.zeros((sets, steps), dtype=bool)
    rows = np.arange(sets)
    for t in range(steps):
        current = schedule[:, t]
        valid = current >= 0
        match = tags == current[:, None]
        hit = match.any(1) & valid
        way = np.where(hit, match.argmax(1), last_use.argmin(1))  # LRU victim: least recently used
        tags[rows[valid], way[valid]] = current[valid]
        last_use[rows[valid], way[valid]] = t + 1
        hits[:, t] = hit
    result = np.empty(lines.size, dtype=bool)
    result[order] = hits[set_of[order], rank]
    return result


def sample(accesses: Sequence[np.ndarray], count: int) -> list[np.ndarray]:
    """At most ``count`` accesses, evenly spaced (deterministic)."""
    if len(accesses) <= count:
        return list(accesses)
    return [accesses[i] for i in np.linspace(0, len(accesses) - 1, count).astype(int)]
