"""Components shipped with the core, so ``icd run`` works with no plugin installed."""

from __future__ import annotations

from . import (
    graph_mock,
    graph_trace,
    measure_cache,
    measure_cachegrind,
    measure_perf,
    measure_wallclock,
    reporters,
    solver_identity,
    workload_mock,
)

BUILTIN_MODULES = (workload_mock, graph_mock, graph_trace, solver_identity, measure_wallclock, measure_cache,
                   measure_cachegrind, measure_perf, reporters)
