"""Entry point of ``icd-measure-ncu``: measures ``ncu`` and ``nvml``."""

from __future__ import annotations

from icd_core import hookimpl

from . import probes


@hookimpl
def icd_register(registry):
    registry.add("measure", "ncu", summary="L2 sector hit rate of the measured region via Nsight Compute",
                 check=probes.ncu_unavailable, provides=("l2_hit_pct",))
    registry.add("measure", "nvml", summary="GPU energy per token from NVML's total-energy counter (>= 2 s window)",
                 check=probes.nvml_unavailable, provides=("ept_j_per_tok",))
    registry.add("measure", "rapl", summary="CPU package energy per token from RAPL counters (>= 2 s window)",
                 check=probes.rapl_unavailable, provides=("ept_j_per_tok",))


@hookimpl
def icd_measure(ctx, measure, state):
    if measure.name == "nvml":
        from .energy import measure_energy

        return measure_energy(ctx, state)
    if measure.name == "ncu":
        from .l2 import measure_l2

        return measure_l2(ctx, state)
    if measure.name == "rapl":
        from .rapl import measure_rapl

        return measure_rapl(state)
    return None
