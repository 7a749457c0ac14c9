"""Built-in graph source ``trace``: W from a JSONL file of access events.

One event per line: ``{"dims": [3, 17, 18], "group": "mlp.hidden", "weight": 1.0}`` —
the dimensions one access touched together (a token's active neurons, a gather's rows),
as indices in the order the workload loads the group. ``group`` may be omitted when the
workload has one group; ``weight`` defaults to 1. ``W_ij = Σ weight`` over events holding
both i and j. Blank lines are skipped. Every k-th event (``graph.trace.holdout``: 0.2 → every
5th, when there are at least 2k events) is kept out of W and replayed by measures instead. A missing, empty or corrupt trace aborts with one
line naming the file, line and field — or, with ``graph.trace.on_error: mock``, is replaced
by a mock W and the substitution is recorded in the events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from icd_core.builtins.graph_mock import mock_for
from icd_core.contract.errors import ConfigError, InputDataError
from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.limits import read_text
from icd_core.contract.records import GraphW
from icd_core.layout.permutations import inverse

NAME = "trace"


FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_events(path: Path, group: str, size: int, only_group: bool,
                groups: tuple[str, ...] = ()) -> list[tuple[np.ndarray, float]]:
    """Parse and validate the events of ``group`` (dims in load order); ``groups``: every
    group of the workload (an event naming another one is an error)."""
    lines = read_text(path, "trace file", "trace_bytes").splitlines()
    events: list[tuple[np.ndarray, float]] = []
    seen_any = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen_any = True
        where = f"{path}:{number}"
        try:
            event: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{where}: invalid JSON ({exc.msg})") from None
        except (RecursionError, ValueError) as exc:
            raise InputDataError(f"{where}: unreadable JSON ({'nested too deeply' if isinstance(exc, RecursionError) else exc})") from None
        if not isinstance(event, dict):
            raise InputDataError(f"{where}: expected a JSON object, got {type(event).__name__}")
        name = event.get("group")
        if name is None and not only_group:
            raise InputDataError(f"{where}: field 'group' is required (the workload has several groups)")
        if name is not None and groups and name not in groups:
            raise InputDataError(f"{where}: field 'group': {name!r} is not a group of this workload "
                                 f"(groups: {', '.join(groups)})")
        if name is not None and name != group:
            continue
        dims = event.get("dims")
        if (not isinstance(dims, list) or not dims
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims)):
            raise InputDataError(f"{where}: field 'dims': expected a non-empty list of integers")
        bad = [d for d in dims if not 0 <= d < size]
        if bad:
            raise InputDataError(f"{where}: field 'dims': index {bad[0]} out of range for group "
                                 f"{group!r} (size {size})")
        weight = event.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight <= 0:
            raise InputDataError(f"{where}: field 'weight': expected a positive number, got {weight!r}")
        if weight > FLOAT32_MAX:
            raise InputDataError(f"{where}: field 'weight': {weight!r} exceeds float32's range (max {FLOAT32_MAX:.3g}); "
                                 f"scale the weights down")
        events.append((np.unique(np.asarray(dims, dtype=np.int64)), float(weight)))
    if not seen_any:
        raise InputDataError(f"{path}: empty trace (no access events)")
    if not events:
        raise InputDataError(f"{path}: no access events for group {group!r}")
    return events


def split_heldout(events: list, holdout: float) -> tuple[list, list]:
    """(events for W, held-out events): every k-th event held out, k = round(1 / holdout),
    when there are at least 2k events; otherwise nothing is held out."""
    if holdout <= 0:
        return events, []
    k = max(2, round(1 / holdout))
    if len(events) < 2 * k:
        return events, []
    return [e for i, e in enumerate(events) if i % k != k - 1], [e for i, e in enumerate(events) if i % k == k - 1]


def trace_w(events: list[tuple[np.ndarray, float]], size: int, layout: np.ndarray, path: Path,
            heldout: list[tuple[np.ndarray, float]] = ()) -> GraphW:
    """Co-access counts in the current layout: ``W = Aᵀ·diag(weight)·A`` without the diagonal."""
    position = inverse(np.asarray(layout, dtype=np.int64))
    accesses = tuple(np.sort(position[dims]) for dims, _ in events)
    rows = np.repeat(np.arange(len(accesses)), [len(a) for a in accesses])
    incidence = sp.csr_matrix((np.repeat([w for _, w in events], [len(a) for a in accesses]),
                               (rows, np.concatenate(accesses))), shape=(len(accesses), size))
    w = (incidence.T @ (incidence > 0).astype(np.float64)).tocsr()
    w.setdiag(0)
    w.eliminate_zeros()
    w.sort_indices()
    if w.nnz and float(w.data.max()) > FLOAT32_MAX:
        raise InputDataError(f"{path}: co-access sums reach {float(w.data.max()):.3g}, beyond float32's range; "
                             f"scale the weights down")
    meta = {"source": NAME, "path": str(path), "events": len(events), "heldout_events": len(heldout),
            "shape": [size, size], "format": "csr", "nnz": int(w.nnz), "seed": None}
    return GraphW(matrix=w.astype(np.float32), meta=meta, access_groups=accesses,
                  heldout=tuple(np.sort(position[dims]) for dims, _ in heldout) or None)


@hookimpl
def icd_register(registry):
    registry.add("graph", NAME, summary="co-access counts from a JSONL access trace (graph.trace.path)")


@hookimpl
def icd_build_w(ctx, source, state, group):
    cfg = ctx.config.graph.trace
    if not cfg.path:
        raise ConfigError("graph.trace.path: required when graph.source is 'trace'")
    path = Path(cfg.path).expanduser()
    try:
        events = read_events(path, group.name, group.size, only_group=len(state.groups) == 1,
                             groups=tuple(g.name for g in state.groups))
        kept, heldout = split_heldout(events, cfg.holdout)
        return trace_w(kept, group.size, state.layout[group.name], path, heldout)
    except InputDataError as exc:
        if cfg.on_error != "mock":
            raise
        ctx.bus.warn(f"trace unusable, substituted a mock W: {exc}", group=group.name)
        mock = mock_for(ctx, state, group)
        return attrs.evolve(mock, meta={**mock.meta, "substitute_for": str(path), "reason": str(exc)})
