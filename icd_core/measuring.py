"""Measuring one state: every selected measure, the workload's quality, layout metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from . import calls
from .cost import layout_metrics
from .records import Figure, GraphW
from .report_model import FIGURE_KEYS
from .specs import ComponentSpec
from .state import ModelState

if TYPE_CHECKING:
    from .context import RunContext
    from .plugins import PluginManager

COUNTER_OF = {"lat_ms": "lat_ms", "toks_per_s": "toks_s", "l2_hit_pct": "l2_hit_pct", "ept_j_per_tok": "ept"}


def _outranks(new: Figure, old: Figure) -> bool:
    """A value beats a null; a measured value beats a modelled or simulated one."""
    if old.value is None:
        return new.value is not None
    return new.value is not None and str(new.source).startswith("measured:") and \
        not str(old.source).startswith("measured:")


def collect_figures(manager: PluginManager, ctx: RunContext, measures: tuple[ComponentSpec, ...],
                    state: ModelState, skip: frozenset[str] = frozenset()) -> tuple[dict[str, Figure], dict[str, str]]:
    """Figures from every usable measure (measured over modelled, else the first value) and
    each measure's status.

    An unavailable or failing measure never stops the run: the figures it would have
    given become ``null`` with the reason.
    """
    figures: dict[str, Figure] = {}
    statuses: dict[str, str] = {}
    provides: dict[str, tuple[str, ...]] = {}
    for spec in measures:
        if spec.name in skip:
            continue
        component = manager.registry.get("measure", spec.name)
        provides[spec.name] = component.provides
        reason = component.unavailable_reason()
        if reason:
            statuses[spec.name] = f"unavailable: {reason}"
            continue
        try:
            fragment = calls.measure(manager, ctx, spec, state)
        except Exception as exc:
            statuses[spec.name] = f"error: {type(exc).__name__}: {exc}"
            ctx.bus.warn(f"measure {spec.name} failed: {type(exc).__name__}: {exc}")
            continue
        statuses[spec.name] = "ok"
        for key, figure in fragment.items():
            if key not in figures or _outranks(figure, figures[key]):
                figures[key] = figure
    for key in FIGURE_KEYS:
        if key not in figures:
            why = "; ".join(f"{n}: {s}" for n, s in statuses.items() if s != "ok" and key in provides[n])
            figures[key] = Figure.missing(f"not measured ({why or 'no selected measure provides it'})")
    return figures, statuses


def measure_state(manager: PluginManager, ctx: RunContext, measures: tuple[ComponentSpec, ...],
                  state: ModelState, reference: Any, w0: dict[str, GraphW], label: str,
                  skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The result block of one branch in ``metrics.json`` (``skip``: measures taken elsewhere,
    e.g. wall-clock timing done interleaved across branches)."""
    figures, statuses = collect_figures(manager, ctx, measures, state, skip)
    quality = state.workload.quality(state, state.run(), reference)
    for key, figure in figures.items():
        if key in COUNTER_OF and figure.value is not None:
            ctx.bus.counter(COUNTER_OF[key], figure.value, branch=label)
    layout = {}
    for name, w in w0.items():
        if len(state.layout[name]) != w.n:  # a transform dropped entries: W no longer indexes the group
            continue
        layout[name] = layout_metrics(w.matrix, state.layout[name], w.block, w.access_groups)
        ctx.bus.counter("C", layout[name]["C"], branch=label, group=name)
        ctx.bus.counter("Q", layout[name]["Q"], branch=label, group=name)
    return {
        "figures": {k: f.to_json() for k, f in figures.items()},
        "quality": {k: f.to_json() for k, f in quality.items()},
        "primary_quality": state.workload.primary_quality,
        "measures": statuses,
        "layout": layout,
        "state_digest": state.digest(),
        "tokens": state.workload.tokens,
    }


def interleaved_timing(ctx: RunContext, states: dict[str, ModelState], results: dict[str, Any]) -> dict[str, Any]:
    """Time every state round-robin and write lat_ms / toks_per_s into each result; returns
    paired ratios (iterative vs linear, linear and iterative vs pre) with bootstrap CIs."""
    from .builtins import measure_wallclock as wc

    cfg = ctx.config.pipeline
    threads = wc.pin_threads(ctx.config.measure.threads)
    samples = wc.interleaved_samples(states, cfg.warmup_iter, cfg.repeats)
    labels = list(states)
    for label, state in states.items():
        figures = wc.figures_from(samples[label], state.workload.tokens, cfg.warmup_iter, ctx.seed,
                                  state.workload.device, threads, interleaved_with=labels)
        kernels = getattr(state.workload, "kernels", None)
        if kernels is not None and kernels(state):
            figures["lat_ms"] = attrs.evolve(figures["lat_ms"], detail={**figures["lat_ms"].detail,
                                                                        "kernels": kernels(state)})
        for key, figure in figures.items():
            results[label]["figures"][key] = figure.to_json()
            ctx.bus.counter(COUNTER_OF[key], figure.value, branch=label)
    pairs = [("linear", "iterative"), ("pre", "linear"), ("pre", "iterative")]
    return {f"{b}_vs_{a}": wc.paired_ratio(samples[a], samples[b], ctx.seed)
            for a, b in pairs if a in samples and b in samples}
