"""Components shipped with the core, so ``icd run`` works with no plugin installed."""

from __future__ import annotations

from icd_core.builtins import (
                   graph_mock,
                   graph_trace,
                   reporters,
                   solver_identity,
                   workload_mock,
)
from icd_core.builtins.measures import cache, cachegrind, perf, wallclock

BUILTIN_MODULES = (workload_mock, graph_mock, graph_trace, solver_identity, wallclock, cache, cachegrind, perf,
                   reporters)
