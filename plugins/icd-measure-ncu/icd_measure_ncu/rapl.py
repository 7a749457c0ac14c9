"""CPU package energy from RAPL (``/sys/class/powercap/intel-rapl:*``), when readable.

Read around a ≥ 2 s window of repeated forwards; the counter wraps at
``max_energy_range_uj``. It covers the whole package (every process on it), so the figure
is an upper bound for the workload on a busy machine — the detail says so.
"""

from __future__ import annotations

import time
from pathlib import Path

from icd_core import Figure

ROOT = Path("/sys/class/powercap")
MIN_WINDOW_S = 2.0
SOURCE = "measured:rapl"


def packages() -> list[Path]:
    return sorted(p for p in ROOT.glob("intel-rapl:*") if p.name.count(":") == 1) if ROOT.is_dir() else []


def unavailable() -> str | None:
    found = packages()
    if not found:
        return f"no RAPL counters ({ROOT} is absent or empty: common in VMs)"
    try:
        int((found[0] / "energy_uj").read_text())
    except (OSError, ValueError) as exc:
        return f"RAPL counter not readable ({type(exc).__name__}; usually needs root)"
    return None


def _read(path: Path) -> int:
    return int((path / "energy_uj").read_text())


def measure_rapl(state) -> dict[str, Figure]:
    device = state.workload.device
    if device.startswith("cuda"):
        return {"ept_j_per_tok": Figure.missing("workload runs on a GPU; RAPL covers the CPU package", "J/tok")}
    reason = unavailable()
    if reason:
        return {"ept_j_per_tok": Figure.missing(reason, "J/tok")}
    pkgs = packages()
    state.run()
    before = [_read(p) for p in pkgs]
    iterations, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < MIN_WINDOW_S:
        state.run()
        iterations += 1
    window = time.perf_counter() - t0
    joules = 0.0
    for p, start in zip(pkgs, before):
        end = _read(p)
        span = int((p / "max_energy_range_uj").read_text())
        joules += ((end - start) % span) / 1e6
    tokens = state.workload.tokens * iterations
    return {"ept_j_per_tok": Figure(joules / tokens, SOURCE, unit="J/tok",
                                    detail={"window_s": window, "iterations": iterations, "energy_j": joules,
                                            "scope": "whole CPU package(s), all processes"})}
