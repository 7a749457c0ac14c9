"""Built-in measure ``cache``: a modelled cache hit rate for the layout-dependent gathers.

Each access the graph source saw (a token's active dims, a trace event) gathers its dims as
columns of a row-major weight (``measure.cache.rows`` rows) whose columns follow the state's
current layout — the reads of an activation-sparse product; the distinct lines of each access
and row, in order, drive a set-associative LRU model (:mod:`icd_core.cachesim`) over a
deterministic sample of ``measure.cache.accesses`` accesses. Reported as
``l2_hit_pct`` with source ``modelled:cache-sim`` (a measured figure, e.g. from ncu, wins over
it), with misses per access beside it — a scrambled layout can hit more often while missing
more. Geometry: ``measure.cache`` (default: H100 L2, 50 MB, 128-byte lines, 16 ways).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cachesim import CacheGeometry, gather_trace, hit_rate, sample
from ..markers import hookimpl
from ..records import Figure

NAME = "cache"
SOURCE = "modelled:cache-sim"
TARGETS = {"h100": (50 * 2 ** 20, 128), "a100": (40 * 2 ** 20, 128)}


def cpu_llc_bytes() -> int | None:
    index = Path("/sys/devices/system/cpu/cpu0/cache")
    sizes = []
    for level in sorted(index.glob("index*")):
        try:
            text = (level / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 2 ** 10, "M": 2 ** 20}.get(text[-1], 1)
        sizes.append(int(text.rstrip("KM")) * unit)
    return max(sizes) if sizes else None


def geometry(cfg) -> CacheGeometry | str:
    if cfg.target == "cpu-llc":
        size, line = cpu_llc_bytes(), 64
        if size is None and cfg.size_bytes is None:
            return "the CPU's last-level cache size is not readable here; set measure.cache.size_bytes"
    else:
        size, line = TARGETS[cfg.target]
    return CacheGeometry(size_bytes=cfg.size_bytes or size, line_bytes=cfg.line_bytes or line, ways=cfg.ways)


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="modelled L2 hit rate and misses of the groups' gathers (set-assoc. LRU)",
                 provides=("l2_hit_pct", "cache_misses_per_access"))


@hookimpl
def icd_measure(ctx, measure, state):
    if measure.name != NAME:
        return None
    geo = geometry(ctx.config.measure.cache)
    if isinstance(geo, str):
        return {"l2_hit_pct": Figure.missing(geo, "%")}
    if not ctx.access_groups:
        return {"l2_hit_pct": Figure.missing("no accesses to replay: the graph source recorded none", "%")}
    hits = misses = accesses = 0
    for group, sets in ctx.access_groups.items():
        layout = np.asarray(state.layout.get(group, []))
        if layout.size != state.group(group).size or layout.size < max(int(a.max()) for a in sets) + 1:
            continue  # a transform dropped entries: the recorded accesses no longer apply
        per_line = max(1, geo.line_bytes // state.element_bytes(group))
        chosen = sample(sets, ctx.config.measure.cache.accesses)
        trace = gather_trace(chosen, layout, per_line, rows=ctx.config.measure.cache.rows)
        _, missed = hit_rate(trace, geo)
        hits += trace.size - missed
        misses += missed
        accesses += len(chosen)
    if accesses == 0:
        return {"l2_hit_pct": Figure.missing("no group keeps its recorded accesses", "%")}
    detail = {"size_bytes": geo.size_bytes, "line_bytes": geo.line_bytes, "ways": geo.ways,
              "rows": ctx.config.measure.cache.rows, "misses": misses, "lines_read": hits + misses,
              "accesses": accesses}
    return {"l2_hit_pct": Figure(100.0 * hits / max(hits + misses, 1), SOURCE, unit="%", detail=detail),
            "cache_misses_per_access": Figure(misses / accesses, SOURCE, unit="lines", detail=detail)}
