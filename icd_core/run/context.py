"""What every hook receives as ``ctx``: config, seed, event bus, run directory, helpers."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from icd_core.config.schema import Config
from icd_core.run.events import EventBus

if TYPE_CHECKING:
    from icd_core.plugin.registry import Registry
    from icd_core.run.artifacts import ArtifactDir


@attrs.define
class Deadline:
    """A time budget; solvers call :meth:`expired` inside every loop."""

    budget_s: float
    started: float = attrs.Factory(time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def expired(self) -> bool:
        return self.elapsed() > self.budget_s


MIN_BUDGET_S = 600.0  # a safety cap: solvers bound their work by counts (levels, passes), not by the clock
NODES_PER_SECOND = 1000.0


def solver_budget(configured: float | None, n: int | None) -> float:
    """The solver's wall-clock cap: the configured one, else max(600 s, n / 1000 s) — 600 s up
    to 600k nodes, 1000 s at 1M. The default is a safety cap only: a solver's result is set by
    the work it counts (bisection levels, refinement passes), so the same seed gives the same π
    on a loaded machine; reaching the cap is a warning, and the best order so far is kept."""
    if configured is not None:
        return float(configured)
    return max(MIN_BUDGET_S, (n or 0) / NODES_PER_SECOND)


@attrs.define
class RunContext:
    """The run's shared context. ``run_dir`` is None outside a run (e.g. ``icd solve``)."""

    config: Config
    registry: Registry
    bus: EventBus = attrs.Factory(EventBus)
    run_dir: ArtifactDir | None = None
    written: list[str] = attrs.Factory(list)
    """Files written through :meth:`write_artifact`, in order (so a failed step can take its
    own files back)."""

    @property
    def seed(self) -> int:
        return self.config.seed

    def rng(self, *salt: Any) -> np.random.Generator:
        """A generator seeded by the run seed and ``salt``: same inputs → same stream."""
        digest = hashlib.sha256(repr((self.seed,) + salt).encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def deadline(self, n: int | None = None) -> Deadline:
        """The budget for solving a group of ``n`` nodes (``solver.time_budget_s``, else scaled with n)."""
        return Deadline(solver_budget(self.config.solver.time_budget_s, n))

    def block_size(self, element_bytes: int = 4) -> int:
        """Cache-line elements g: ``solver.block``, else ``solver.line_bytes`` / element size."""
        return self.config.solver.block or max(1, self.config.solver.line_bytes // element_bytes)

    def wants_report(self, name: str) -> bool:
        """Whether reporter ``name`` should write (metrics.json is always written, by the core)."""
        formats = self.config.report.formats
        return formats is None or name in formats

    def write_artifact(self, relative: str, content: str | bytes) -> str:
        """Write a file atomically into the run directory; returns ``relative``."""
        if self.run_dir is None:
            raise RuntimeError("no run directory in this context")
        if isinstance(content, bytes):
            self.run_dir.write_bytes(relative, content)
        else:
            self.run_dir.write_text(relative, content)
        self.written.append(relative)
        return relative
