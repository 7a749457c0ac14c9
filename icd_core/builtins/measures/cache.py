"""Built-in measure ``cache``: modelled cache traffic of the reads a layout decides.

The model (:mod:`icd_core.layout.decode_model`) replays held-out accesses — tokens or events the
graph source kept apart from W — as decode steps: each group's input-dim weights are read at
the active columns only, every other weight streams whole between the groups. The cache is
the one of the machine that runs the workload: this CPU's L2 (read from sysfs) for a CPU
workload, the named GPU's L2 for a CUDA one (``measure.cache.target`` overrides; the detail
says which). Figures, all ``modelled:cache-sim``, primary first:

- ``cache_misses_per_access``: lines fetched from the next level per access (falls when a
  layout improves), with ``cache_bytes_per_access`` beside it;
- ``cache_lines_read_per_access``: lines the gathers touch, before any cache;
- ``l2_hit_pct``: the hit rate of those reads — secondary: it can rise while more is read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import Figure, Samples
from icd_core.layout.cachesim import CacheGeometry, sample
from icd_core.layout.decode_model import replay

NAME = "cache"
SOURCE = "modelled:cache-sim"
SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
GPU_L2 = {"h100": (50 * 2 ** 20, 128, 16), "h200": (50 * 2 ** 20, 128, 16), "a100": (40 * 2 ** 20, 128, 16)}


def _size(text: str) -> int:
    unit = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * unit


def cpu_cache(level: str, root: Path = SYSFS) -> tuple[CacheGeometry, str] | str:
    """This CPU's L2 (``level="l2"``) or last-level cache from sysfs, with a description."""
    found = []
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            found.append((int((index / "level").read_text()), _size((index / "size").read_text().strip()),
                          int((index / "coherency_line_size").read_text()),
                          int((index / "ways_of_associativity").read_text())))
        except (OSError, ValueError):
            continue
    chosen = [f for f in found if f[0] == 2] if level == "l2" else sorted(found)[-1:]
    if not chosen:
        return f"this CPU's {'L2' if level == 'l2' else 'last-level'} cache is not readable in {root}"
    lvl, size, line, ways = chosen[0]
    return CacheGeometry(size, line, max(ways, 1)), f"this CPU's L{lvl} (sysfs: {size // 1024} KiB, {ways}-way, {line} B lines)"


def gpu_target(device: str) -> str | None:
    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(device)).lower()
    return next((key for key in GPU_L2 if key in name), None)


def geometry(cfg, device: str) -> tuple[CacheGeometry, str] | str:
    """The modelled cache for a workload on ``device`` (config overrides win)."""
    target = cfg.target
    if target == "auto":
        target = "cpu-l2" if not device.startswith("cuda") else (gpu_target(device) or "unknown-gpu")
        if target == "unknown-gpu" and cfg.size_bytes is None:
            return f"no L2 size known for the GPU of {device}; set measure.cache.target or size_bytes"
    if target in ("cpu-l2", "cpu-llc"):
        found = cpu_cache("l2" if target == "cpu-l2" else "llc")
        if isinstance(found, str):
            if cfg.size_bytes is None:
                return found + "; set measure.cache.size_bytes"
            found = (CacheGeometry(cfg.size_bytes, cfg.line_bytes or 64, cfg.ways or 16), "configured")
        base, what = found
    elif target in GPU_L2:
        size, line, ways = GPU_L2[target]
        base, what = CacheGeometry(size, line, ways), f"{target.upper()} L2 ({size // 2 ** 20} MiB, {line} B lines)"
    else:
        base, what = CacheGeometry(cfg.size_bytes or 0, cfg.line_bytes or 128, cfg.ways or 16), "configured"
    geo = CacheGeometry(cfg.size_bytes or base.size_bytes, cfg.line_bytes or base.line_bytes, cfg.ways or base.ways)
    overridden = (cfg.size_bytes, cfg.line_bytes, cfg.ways) != (None, None, None)
    return geo, what + (" with measure.cache overrides" if overridden else "")


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="modelled misses, lines and L2 hit rate of the layout's reads "
                 "(held-out accesses, this machine's cache)",
                 provides=("cache_misses_per_access", "cache_bytes_per_access", "cache_lines_read_per_access",
                           "l2_hit_pct"))


@hookimpl
def icd_measure(ctx, measure, state):
    found = geometry(ctx.config.measure.cache, state.workload.device)
    if isinstance(found, str):
        return {"cache_misses_per_access": Figure.missing(found, "lines"), "l2_hit_pct": Figure.missing(found, "%")}
    geo, what = found
    usable = {g: a for g, a in state.accesses.items()
              if g in state.layout and len(state.layout[g]) == state.group(g).size
              and len(state.layout[g]) > max(int(s.max()) for s in a.sets if len(s))}
    if not usable:
        why = "no accesses to replay (the graph source recorded none)" if not state.accesses else \
            "no group keeps its recorded accesses (a transform dropped entries)"
        return {"cache_misses_per_access": Figure.missing(why, "lines"), "l2_hit_pct": Figure.missing(why, "%")}
    count = ctx.config.measure.cache.accesses
    result = replay(state, {g: sample(a.sets, count) for g, a in usable.items()}, geo)
    heldout = all(a.heldout for a in usable.values())
    reads, misses = int(result.reads.sum()), int(result.misses.sum())
    tokens = len(result.reads)
    detail = {"cache": what, "size_bytes": geo.size_bytes, "line_bytes": geo.line_bytes, "ways": geo.ways,
              "accesses": tokens, "groups": sorted(usable), "lines_read": reads, "misses": misses,
              "replayed": "held-out accesses (not the ones W was built from)" if heldout
              else "the accesses W was built from (the graph source kept none apart)",
              "model": result.mode, "streamed_bytes_per_step": result.dense_bytes}
    per_token = Samples("token", result.misses.astype(np.float64))
    return {
        "cache_misses_per_access": Figure(misses / tokens, SOURCE, unit="lines", detail=detail, samples=per_token),
        "cache_bytes_per_access": Figure(misses * geo.line_bytes / tokens, SOURCE, unit="B",
                                         samples=Samples("token", result.misses * float(geo.line_bytes))),
        "cache_lines_read_per_access": Figure(reads / tokens, SOURCE, unit="lines",
                                              samples=Samples("token", result.reads.astype(np.float64))),
        "l2_hit_pct": Figure(100.0 * (reads - misses) / max(reads, 1), SOURCE, unit="%",
                             detail={"cache": what, "secondary": "a hit rate can rise while more lines are "
                                     "read; judge a layout by misses and lines"}),
    }
