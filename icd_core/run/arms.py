"""Which arms a run has, decided once the workload is loaded: the branches of the mode, the
``identity`` arm beside them, and the adapter whose rate is searched (with what decides it)."""

from __future__ import annotations

from typing import Any

import attrs

from icd_core.contract.abilities import ChecksState, SearchesRate, SuggestsRate
from icd_core.contract.errors import ConfigError
from icd_core.contract.records import KV_TOKENS, Figure
from icd_core.contract.state import ModelState
from icd_core.run.context import RunContext
from icd_core.run.measuring import judge_quality
from icd_core.run.results import CONTROL
from icd_core.run.selection import Selection

BRANCHES_OF_MODE = {"linear": ("linear",), "iterative": ("iterative",), "compare": ("linear", "iterative")}
ARM = "identity"
"""The transform with no permutation at all (run beside the others in an equal-quality comparison)."""


@attrs.frozen
class ArmPlan:
    """What the loaded workload and the config decide before any branch runs: the branches,
    the adapter whose rate is searched (``auto_index``), what decides the search (metric and
    limit), the dense model's output (``reference``) and its quality; the control arms
    (``random1`` …, quality only) or why there are none (``no_control``)."""

    branches: tuple[str, ...]
    auto_index: int | None = None
    rate_metric: str = ""
    rate_limit: float = 0.0
    reference: Any = None
    pre_quality: dict[str, Figure] = attrs.Factory(dict)
    controls: tuple[str, ...] = ()
    no_control: str | None = None


def auto_adapter(sel: Selection, state0: ModelState) -> int | None:
    """The index of the adapter with an ``auto`` rate (one at most), after every adapter's own
    word on options that cannot apply to this state."""
    for spec in sel.adapters:
        if isinstance(spec.options, ChecksState):
            spec.options.check_state(state0)
    auto = [i for i, spec in enumerate(sel.adapters)
            if isinstance(spec.options, SearchesRate) and spec.options.auto_knob(state0) is not None]
    if len(auto) > 1:
        raise ConfigError("transform.adapters: only one adapter may have an auto rate (got "
                          + ", ".join(sel.adapters[i].text for i in auto) + ")")
    return auto[0] if auto else None


def plan_arms(ctx: RunContext, sel: Selection, state0: ModelState, reference: Any) -> ArmPlan:
    """Which branches run: an ``identity`` arm too (compare mode, any transform); which adapter
    has an ``auto`` rate, and what decides the search (metric, limit, the dense model's quality)."""
    cfg = ctx.config
    if cfg.execution.backend == "paged" and not any(g.kind == KV_TOKENS for g in state0.groups):
        raise ConfigError(f"execution.backend paged: workload {sel.workload.text!r} has no KV-cache group "
                          f"to read in pages (a decoder with its cache's token axis, e.g. smollm2:groups=kv)")
    auto_index = auto_adapter(sel, state0)
    # Compare mode always runs the transform in natural order too: what layout bought at the
    # user's rate (quality here; the rate itself when it is searched) leads the card.
    branches = ((ARM,) if sel.adapters and cfg.pipeline.mode == "compare" else ()) + BRANCHES_OF_MODE[cfg.pipeline.mode]
    workload = state0.workload
    suggested = workload.rate_metric if isinstance(workload, SuggestsRate) else None
    rate_metric = cfg.execution.rate_metric or suggested or workload.primary_quality
    rate_limit = cfg.execution.rate_limit if cfg.execution.rate_limit is not None else \
        workload.rate_limit if suggested is not None and rate_metric == suggested else None
    if rate_limit is None:
        rate_limit = cfg.gates.quality_drop_pp
    pre_quality: dict[str, Figure] = {}
    if auto_index is not None:
        with ctx.bus.stage("measure", state="MEASURED", branch="pre", what="quality (rate search reference)"):
            pre_quality = judge_quality(state0, reference, reference)
        if rate_metric not in pre_quality:
            raise ConfigError(f"execution.rate_metric: {rate_metric!r} is not a quality figure of workload "
                              f"{workload.name!r} (it reports: {', '.join(sorted(pre_quality))})")
    controls, no_control = plan_controls(cfg.pipeline.random_orders, ARM in branches, auto_index)
    return ArmPlan(branches=branches, auto_index=auto_index, rate_metric=rate_metric, rate_limit=rate_limit,
                   reference=reference, pre_quality=pre_quality, controls=controls, no_control=no_control)


def plan_controls(orders: int, compared: bool, auto_index: int | None) -> tuple[tuple[str, ...], str | None]:
    """The control arms (``random1`` …) beside π₀'s, or why none runs."""
    if not compared:
        return (), "it runs in compare mode, beside the natural-order arm of a transform"
    if orders == 0:
        return (), "pipeline.random_orders is 0"
    if auto_index is not None:
        return (), "the rate is searched per arm; a control would repeat the search per random order"
    return tuple(f"{CONTROL}{k}" for k in range(1, orders + 1)), None
