"""What the engine hands to reporting: one frozen record of a finished (or failed) run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from icd_core.config.schema import Config
from icd_core.contract.state import ModelState
from icd_core.run.results import BranchResult
from icd_core.run.selection import Selection


@attrs.frozen
class RunRecord:
    """A run as values: the effective config and components, its tag, when it started and how
    long it took; each arm's result (``pre``: the loaded model), every fit, π per group, the
    rollback (if any), the error (``None``: every stage succeeded), the final state's digest,
    π₀'s equivalence check, how the timing went and each arm's rate search; each arm's final
    state and the arm the run kept (``pre`` after a rollback, ``None`` when it failed); why no
    random-order control ran (``None``: it ran, or the run stopped before its arms were planned)."""

    config: Config
    selection: Selection
    name: str
    tag: str
    started: datetime
    duration_s: float
    results: Mapping[str, BranchResult] = attrs.Factory(dict)
    fits: tuple[dict[str, Any], ...] = ()
    perms: Mapping[str, Mapping[str, Any]] = attrs.Factory(dict)
    rollback: dict[str, Any] | None = None
    error: str | None = None
    final_digest: str | None = None
    equivalence: dict[str, Any] | None = None
    timing: dict[str, Any] = attrs.Factory(dict)
    searches: Mapping[str, Any] = attrs.Factory(dict)
    rate_metric: str | None = None
    states: Mapping[str, ModelState] = attrs.Factory(dict)
    kept: str | None = None
    no_control: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
