"""The kernel the cache model replays: one decode step per access, reading every weight once.

Each group's input-dim weights (its ``"in"`` members, seen as rows × axis) are read only at
the access's active columns: the lines holding any active column — what a layout decides.
Every other weight (embedding tables excepted: they are read by row) streams whole, split
evenly into one segment before each group's gather. A segment at least as large as the cache
evicts everything before the next gather (a streamed region of set-associative LRU larger
than the cache fills every way of every set), so each gather then starts cold and its misses
are its distinct lines, counted exactly without simulation; otherwise the whole sequence of
lines goes through :func:`icd_core.layout.cachesim.simulate_lru`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np

from icd_core.contract import tensors as T
from icd_core.layout.cachesim import CacheGeometry, simulate_lru
from icd_core.layout.permutations import inverse

MAX_SIMULATED_LINES = 4_000_000
"""Tokens replayed through the simulator are cut so the line sequence stays below this."""


@attrs.frozen
class Gather:
    """One input-dim weight of a group: ``rows`` rows of ``axis`` elements from byte ``base``;
    the group's positions sit at ``starts[t] + position`` (one start per slice)."""

    group: str
    rows: int
    axis: int
    starts: tuple[int, ...]
    base: int
    element_bytes: int

    @property
    def nbytes(self) -> int:
        return self.rows * self.axis * self.element_bytes


def gathers_of(state, groups: Sequence[str]) -> tuple[list[Gather], int]:
    """The gathers of ``groups`` laid out one after another, and the bytes of every other
    weight (streamed whole each step)."""
    targets, _ = state.reduction_weights()
    gathers, base, used = [], 0, set()
    for name in groups:
        group = state.group(name)
        for m in targets.get(name, []):
            tensor = state.tensors[m.tensor]
            shape = tuple(tensor.shape)
            step = m.stride if m.stride is not None else group.size
            g = Gather(name, int(np.prod(shape)) // shape[m.axis], shape[m.axis],
                       tuple(m.offset + t * step for t in range(m.tiles)), base, T.element_size(tensor))
            gathers.append(g)
            base += g.nbytes
            used.add(m.tensor)
    dense = sum(int(np.prod(tuple(t.shape))) * T.element_size(t) for k, t in state.tensors.items()
                if k not in used and "embed" not in k)
    return gathers, dense


def gather_lines(g: Gather, positions: np.ndarray, line_bytes: int) -> np.ndarray:
    """Distinct line ids a gather reads for the active ``positions`` (current layout)."""
    cols = np.concatenate([start + positions for start in g.starts])
    offsets = (np.arange(g.rows, dtype=np.int64)[:, None] * g.axis + cols[None, :]) * g.element_bytes + g.base
    return np.unique(offsets // line_bytes)


def count_lines(g: Gather, positions: np.ndarray, line_bytes: int) -> int:
    """``len(gather_lines(...))``, in O(active) when rows start on line boundaries."""
    row_bytes = g.axis * g.element_bytes
    if row_bytes % line_bytes == 0 and g.base % line_bytes == 0:
        per_line = line_bytes // g.element_bytes
        cols = np.concatenate([start + positions for start in g.starts])
        return g.rows * len(np.unique(cols // per_line))
    return len(gather_lines(g, positions, line_bytes))


@attrs.frozen
class Replay:
    """Per token: lines the gathers read and lines fetched (misses); how the cache was driven."""

    reads: np.ndarray
    misses: np.ndarray
    mode: str
    dense_bytes: int


def replay(state, accesses: Mapping[str, Sequence[np.ndarray]], geometry: CacheGeometry) -> Replay:
    """Replay ``accesses`` (per group, dims in load order; token t uses each group's t-th)."""
    groups = [g for g in (x.name for x in state.groups) if g in accesses]
    gathers, dense = gathers_of(state, groups)
    tokens = min(len(accesses[g]) for g in groups)
    position = {g: inverse(np.asarray(state.layout[g], dtype=np.int64)) for g in groups}
    segment = dense // max(len(gathers), 1)
    if segment >= geometry.size_bytes:
        reads = np.array([sum(count_lines(x, np.sort(position[x.group][accesses[x.group][t]]), geometry.line_bytes)
                              for x in gathers) for t in range(tokens)], dtype=np.int64)
        return Replay(reads, reads.copy(), "every gather starts cold: the weights streamed between gathers "
                                           "exceed the cache", dense)
    top = sum(x.nbytes for x in gathers)
    segment_lines = [np.arange(top + i * segment, top + (i + 1) * segment, geometry.line_bytes) // geometry.line_bytes
                     for i in range(len(gathers))] if segment else [np.zeros(0, np.int64)] * len(gathers)
    parts, owner, budget = [], [], MAX_SIMULATED_LINES
    for t in range(tokens):
        step = []
        for x, dense_lines in zip(gathers, segment_lines):
            lines = gather_lines(x, np.sort(position[x.group][accesses[x.group][t]]), geometry.line_bytes)
            step += [(dense_lines, -1), (lines, t)]
        size = sum(len(a) for a, _ in step)
        if size > budget and parts:
            break
        budget -= size
        for lines, who in step:
            parts.append(lines)
            owner.append(np.full(len(lines), who, dtype=np.int64))
    trace, who = np.concatenate(parts), np.concatenate(owner)
    hits = simulate_lru(trace, geometry.sets, geometry.ways)
    done = int(who.max()) + 1
    gathered = who >= 0
    reads = np.bincount(who[gathered], minlength=done)
    misses = np.bincount(who[gathered & ~hits], minlength=done)
    return Replay(reads, misses, f"simulated set-associative LRU, {done} of {tokens} tokens", dense)
