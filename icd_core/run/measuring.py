"""Measuring states: every selected measure, the workload's quality, layout metrics, and the
wall clock of all states together (interleaved, paired)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from icd_core.contract.abilities import ReportsKernels
from icd_core.contract.records import Figure, GraphW, Samples
from icd_core.contract.state import ModelState
from icd_core.layout.metrics import layout_metrics
from icd_core.plugin import dispatch
from icd_core.plugin.specs import ComponentSpec
from icd_core.run import timing
from icd_core.run.paired import compare, judge
from icd_core.run.results import FIGURE_KEYS, BranchResult, ranked

if TYPE_CHECKING:
    from icd_core.plugin.manager import PluginManager
    from icd_core.run.context import RunContext

COUNTER_OF = {"lat_ms": "lat_ms", "toks_per_s": "toks_s", "l2_hit_pct": "l2_hit_pct", "ept_j_per_tok": "ept"}


def collect_figures(manager: PluginManager, ctx: RunContext, measures: tuple[ComponentSpec, ...],
                    state: ModelState, skip: frozenset[str] = frozenset()
                    ) -> tuple[dict[str, tuple[Figure, ...]], dict[str, str]]:
    """Per figure key, every usable measure's figure (best source first), and each measure's
    status. An unavailable or failing measure never stops the run: a figure no measure gave
    becomes ``null`` with the reasons."""
    found: dict[str, list[Figure]] = {}
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
            fragment = dispatch.measure(manager, ctx, spec, state)
        except Exception as exc:
            statuses[spec.name] = f"error: {type(exc).__name__}: {exc}"
            ctx.bus.warn(f"measure {spec.name} failed: {type(exc).__name__}: {exc}")
            continue
        statuses[spec.name] = "ok"
        for key, figure in fragment.items():
            found.setdefault(key, []).append(figure)
    figures = {key: _keep(ranked(values)) for key, values in found.items()}
    later = {key for spec in measures if spec.name in skip
             for key in manager.registry.get("measure", spec.name).provides}
    for key in FIGURE_KEYS:
        if key not in figures and key not in later:
            why = "; ".join(f"{n}: {s}" for n, s in statuses.items() if s != "ok" and key in provides[n])
            figures[key] = (Figure.missing(f"not measured ({why or 'no selected measure provides it'})"),)
    return figures, statuses


def _keep(figures: tuple[Figure, ...]) -> tuple[Figure, ...]:
    """Every value; a null only when no measure gave a value (its reason is then the answer)."""
    values = tuple(f for f in figures if f.value is not None)
    return values or figures[:1]


def judge_quality(state: ModelState, output: Any, reference: Any) -> dict[str, Figure]:
    """The workload's quality figures for ``state`` given its output on the batch."""
    return dict(state.workload.quality(state, output, reference))


def measure_state(manager: PluginManager, ctx: RunContext, measures: tuple[ComponentSpec, ...],
                  state: ModelState, reference: Any, w0: Mapping[str, GraphW], label: str,
                  skip: frozenset[str] = frozenset(), with_quality: bool = True) -> BranchResult:
    """One branch's result (``skip``: measures taken elsewhere, e.g. the wall clock, which
    times all states together; ``with_quality=False``: quality is judged later, on the
    output the timing rounds produce)."""
    figures, statuses = collect_figures(manager, ctx, measures, state, skip)
    quality = judge_quality(state, state.run(), reference) if with_quality else {}
    for key, options in figures.items():
        if key in COUNTER_OF and options[0].value is not None:
            ctx.bus.counter(COUNTER_OF[key], options[0].value, branch=label)
    layout = {}
    for name, w in w0.items():
        if len(state.layout[name]) != w.n:  # a transform dropped entries: W no longer indexes the group
            continue
        accesses = state.accesses.get(name)
        layout[name] = layout_metrics(w.matrix, state.layout[name], w.block, accesses.sets if accesses else None)
        ctx.bus.counter("C", layout[name]["C"], branch=label, group=name)
        ctx.bus.counter("Q", layout[name]["Q"], branch=label, group=name)
    return BranchResult(figures=figures, quality=quality, primary_quality=state.workload.primary_quality,
                        measures=statuses, layout=layout, state_digest=state.digest(),
                        tokens=state.workload.tokens)


def latency_decided(thresholds: list[tuple[str, str, float]], seed: int):
    """A stop rule for interleaved timing: every (a, b, threshold) has a latency change whose
    95 % CI lies wholly on one side of its threshold (%)."""
    def decided(samples: Mapping[str, list[float]]) -> bool:
        for a, b, threshold in thresholds:
            fa = Figure(float(np.median(samples[a])), "measured:wallclock", samples=Samples("round", samples[a], "median"))
            fb = Figure(float(np.median(samples[b])), "measured:wallclock", samples=Samples("round", samples[b], "median"))
            change = compare("lat_ms", fa, fb, "relative", seed)
            if isinstance(change, str) or judge(change.ci95, threshold, "lower") == "inconclusive":
                return False
        return True

    return decided


@attrs.frozen
class Timed:
    """Interleaved wall clock of several states: per state its latency figures (and any region
    timed inside the forward), its first output, and how the sampling went (rounds, why it
    stopped, threads)."""

    figures: dict[str, dict[str, Figure]]
    outputs: dict[str, Any]
    info: dict[str, Any]


def interleaved_timing(ctx: RunContext, states: Mapping[str, ModelState],
                       thresholds: list[tuple[str, str, float]]) -> Timed:
    """Time every state in shuffled interleaved rounds: lat_ms / toks_per_s per state.

    ``thresholds``: (a, b, %) latency comparisons that must be decided before sampling may
    stop early."""
    cfg = ctx.config.pipeline
    rng = ctx.rng("interleaved-timing")
    decided = latency_decided(thresholds, ctx.seed) if cfg.stop_when_decided and thresholds else None
    threads = timing.pin_threads(ctx.config.measure.threads)
    try:
        sampling = timing.interleaved_samples(states, cfg.warmup_iter, cfg.repeats, min_rounds=cfg.min_repeats,
                                              decided=decided, rng=rng)
    finally:
        threads = timing.unpin_threads(threads)
    labels = list(states)
    by_state: dict[str, dict[str, Figure]] = {}
    for label, state in states.items():
        figures = timing.figures_from(sampling.ms[label], state.workload.tokens, cfg.warmup_iter, ctx.seed,
                                      state.workload.device, threads, interleaved_with=labels)
        kernels = state.workload.kernels if isinstance(state.workload, ReportsKernels) else None
        if kernels is not None and kernels(state):
            figures["lat_ms"] = attrs.evolve(figures["lat_ms"], detail={**figures["lat_ms"].detail,
                                                                        "kernels": kernels(state)})
        for region, values in sampling.regions.get(label, {}).items():  # e.g. attention, timed inside the forward
            figures[f"{region}_ms"] = Figure(float(np.median(values)), timing.SOURCE, unit="ms",
                                             detail={"region": region, "samples_ms": values},
                                             samples=Samples("round", values, "median"))
        by_state[label] = figures
        for key, figure in figures.items():
            if key in COUNTER_OF:
                ctx.bus.counter(COUNTER_OF[key], figure.value, branch=label)
    rounds = sampling.rounds
    stopped = "every latency comparison decided" if decided is not None and rounds < cfg.repeats else \
        f"the maximum of {cfg.repeats} rounds"
    return Timed(figures=by_state, outputs=sampling.outputs, info={
        "rounds": rounds, "max_rounds": cfg.repeats, "min_rounds": min(cfg.min_repeats, cfg.repeats),
        "stopped_at": stopped, "order": "shuffled per round (seeded)", "warmup_rounds": cfg.warmup_iter,
        "threads": threads})
