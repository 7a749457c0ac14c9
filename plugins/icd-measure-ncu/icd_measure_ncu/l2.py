"""L2 hit rate: what this release reports for the measured region.

Profiling a region under Nsight Compute needs the state rebuilt in a child process; until
that lands the figure is ``null`` with the reason, never a guess.
"""

from __future__ import annotations

from icd_core import Figure


def measure_l2(state) -> dict[str, Figure]:
    device = state.workload.device
    if not device.startswith("cuda"):
        reason = f"workload runs on {device}; Nsight Compute profiles CUDA kernels only"
    else:
        reason = "region replay under ncu is not in this release of icd-measure-ncu"
    return {"l2_hit_pct": Figure.missing(reason, "%")}
