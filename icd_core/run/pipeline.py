"""The run: READY → W_BUILT → PERMUTED → TRANSFORMED → REPERMUTED → MEASURED, as values.

``linear`` applies π₀ then the transforms; ``iterative`` re-builds W′ and re-permutes (π₁,
respecting the constraints a transform left) after every transform that asks for it;
``compare`` runs both from the same π₀ state, inputs and seed (and the transform with no
permutation, the ``identity`` arm). Each arm is an :class:`~icd_core.run.engine.ArmOutcome`.
A failing stage, or a final state whose paired comparison with the pre-run state breaches a
rollback tolerance, runs the registered undos in reverse and restores the pre-run state
(π_prev); a restoration that does not verify bit for bit fails the run. The result is one
:class:`~icd_core.run.record.RunRecord`; reporting (REPORTED) is the launcher's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import numpy as np

from icd_core.config.files import config_to_dict
from icd_core.contract.errors import ArtifactWriteError, ContractError, InputDataError, UsageError
from icd_core.contract.jsonify import dumps
from icd_core.contract.records import Accesses, GraphW
from icd_core.contract.state import ModelState
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.run.arms import ARM, plan_arms
from icd_core.run.artifacts import csr_npz_bytes
from icd_core.run.context import RunContext
from icd_core.run.engine import Engine
from icd_core.run.fits import W_DENSE, Fitter
from icd_core.run.measuring import interleaved_timing, judge_quality, measure_state
from icd_core.run.permcache import PermutationCache, version_tag
from icd_core.run.record import RunRecord
from icd_core.run.results import BranchResult
from icd_core.run.rollback import UndoStack, roll_back
from icd_core.run.selection import Selection, settle
from icd_core.run.tolerances import regressions

TIMED_TOGETHER = frozenset({"wallclock"})
"""Measures that time every state together, interleaved, after the arms ran."""


class Pipeline:
    """One run of the selected components in ``ctx`` (its run directory and event bus)."""

    def __init__(self, manager: PluginManager, selection: Selection, ctx: RunContext) -> None:
        self.manager = manager
        self.selection = selection
        self.ctx = ctx

    def _engine(self, state0: ModelState, reference: Any) -> Engine:
        """The run settled by the loaded workload (auto source, repeats), its tag, its solver
        behind the permutation cache and its arm plan; ``config.json`` written."""
        manager = self.manager
        sel = settle(self.selection, manager.registry, state0.workload)
        ctx = attrs.evolve(self.ctx, config=sel.config)
        settings = config_to_dict(sel.config)
        tag = version_tag(sel.workload.key(), sel.graph.key(), dumps(settings["graph"]),
                          *(a.key() for a in sel.adapters), str(sel.config.seed),
                          *(f"{p['distribution']}=={p['version']}" for p in manager.loaded()
                            if p["status"] == "ok" and not p["builtin"]))
        ctx.write_artifact("config.json", dumps(settings) + "\n")
        solver = manager.registry.get("solver", sel.solver.name)
        solver_key = version_tag(sel.solver.key(), dumps(settings["solver"]), manager.code_version(solver.provider))
        cache = PermutationCache.at(ctx.run_dir.out_dir / ".cache" / "perm" if sel.config.solver.cache else None,
                                    ctx.bus)
        return Engine(manager=manager, ctx=ctx, sel=sel, plan=plan_arms(ctx, sel, state0, reference),
                      blocks={g.name: ctx.block_size(state0.element_bytes(g.name)) for g in state0.groups},
                      fitter=Fitter(manager, ctx, sel.solver, cache, tag, solver_key))

    def run(self) -> RunRecord:
        """Every stage; raises only on bad input (UsageError, InputDataError) or an unwritable run directory."""
        started, t0 = datetime.now(UTC), time.perf_counter()
        ctx, engine = self.ctx, None
        results: dict[str, BranchResult] = {}
        finals: dict[str, ModelState] = {}
        arms: dict[str, Any] = {}
        shared = None
        rollback = error = pre_digest = equivalence = pre_state = active = None
        timing: dict[str, Any] = {}
        chosen = ""
        try:
            with ctx.bus.stage("load_workload", state="READY", workload=self.selection.workload.text) as meta:
                state0 = dispatch.load_workload(self.manager, ctx, self.selection.workload)
                meta.update(groups={g.name: g.size for g in state0.groups}, tokens=state0.workload.tokens)
            active = UndoStack(state0)
            reference = state0.run()
            check_finite(state0, reference)
            engine = self._engine(state0, reference)
            ctx = engine.ctx
            w0 = engine.build_w(state0, W_DENSE)
            state0 = attrs.evolve(state0, accesses={k: a for k, a in ((k, Accesses.of(v)) for k, v in w0.items())
                                                    if a is not None})
            pre_state = state0
            active = UndoStack(state0)  # the same state, with its accesses
            ctx.write_artifact("W.npz", csr_npz_bytes({k: v.matrix for k, v in w0.items()}))
            results["pre"] = measure(engine, "pre", state0, w0)
            pre_digest = results["pre"].state_digest
            shared = engine.first_fit(UndoStack(state0), w0)
            active = shared.stack
            equivalence = check_equivalence(ctx, shared.state, reference)
            if not equivalence["ok"]:
                raise ContractError(f"π₀ changed the output of workload {engine.sel.workload.name!r} "
                                    f"({state0.workload.name}): {culprit(ctx, state0, shared.state, reference)} "
                                    f"(a permutation group misses a member)")
            finals = {"pre": state0}
            for branch in engine.plan.branches:
                active = UndoStack(state0) if branch == ARM else shared.stack
                arms[branch] = engine.arm(branch, active)
                finals[branch] = arms[branch].state
                results[branch] = attrs.evolve(measure(engine, branch, finals[branch], w0),
                                               transforms=arms[branch].metas)
            for control in engine.plan.controls:  # quality only: never timed, exported or kept
                outcome = engine.control(control, UndoStack(state0))
                results[control] = attrs.evolve(measure_control(engine, control, outcome.state, w0),
                                                transforms=outcome.metas)
            chosen = "linear" if ctx.config.pipeline.mode == "linear" else "iterative"
            active = arms[chosen].stack  # the state the run hands back, unless rolled back
            results, timing = time_together(engine, finals, results, chosen)
            w_prime = {k: v for arm in arms.values() for k, v in arm.w_prime.items()}
            if w_prime:
                ctx.write_artifact("W_prime.npz", csr_npz_bytes({k: v.matrix for k, v in w_prime.items()}))
            cfg = ctx.config
            why = regressions(results["pre"], results[chosen], cfg.rollback, cfg.gates.allow_modelled, cfg.seed)
            if why and cfg.rollback.enabled:
                active, rollback = roll_back_to_pre(ctx, "regression", why, chosen, active, pre_state, pre_digest)
        except (UsageError, InputDataError, ArtifactWriteError):
            raise  # bad input, or the run directory cannot be written: the caller abandons it
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if active is not None and pre_digest is not None:
                active, rollback = roll_back_to_pre(ctx, "failure", [error], "current", active, pre_state, pre_digest)
        if rollback is not None and not rollback["verified"]:
            error = (f"{error}; " if error else "") + \
                f"rollback NOT verified: the restored state's digest {rollback['state_digest'][:12]}… differs " \
                f"from the pre-run state's {rollback['expected_digest'][:12]}…"
        if "config.json" not in ctx.written:  # the run failed before the workload settled the config
            ctx.write_artifact("config.json", dumps(config_to_dict(ctx.config)) + "\n")
        kept = None if error else ("pre" if rollback else chosen)
        return RunRecord(
            config=ctx.config, selection=engine.sel if engine else self.selection, name=ctx.run_dir.name,
            tag=engine.fitter.tag if engine else "", started=started, duration_s=time.perf_counter() - t0,
            results=results, fits=tuple(f for arm in (shared, *arms.values()) if arm for f in arm.fits),
            perms=permutations(engine, shared, arms), rollback=rollback, error=error,
            final_digest=active.state.digest() if active else None, equivalence=equivalence, timing=timing,
            searches={b: arm.search for b, arm in arms.items() if arm.search is not None},
            rate_metric=(engine.plan.rate_metric or None) if engine else None,
            states=finals if kept else {}, kept=kept, no_control=engine.plan.no_control if engine else None)


def measure(engine: Engine, label: str, state: ModelState, w0: Mapping[str, GraphW]) -> BranchResult:
    """Every measure but those timing all states together afterwards (which then hand each
    state's output to the quality judgement)."""
    together = TIMED_TOGETHER & {m.name for m in engine.sel.measures}
    with engine.ctx.bus.stage("measure", state="MEASURED", branch=label):
        return measure_state(engine.manager, engine.ctx, engine.sel.measures, state, engine.plan.reference, w0,
                             label, skip=together, with_quality=not together)


def measure_control(engine: Engine, label: str, state: ModelState, w0: Mapping[str, GraphW]) -> BranchResult:
    """A control arm's quality and layout metrics (no measure runs: nothing of it is timed)."""
    with engine.ctx.bus.stage("measure", state="MEASURED", branch=label, what="quality (control)"):
        return measure_state(engine.manager, engine.ctx, engine.sel.measures, state, engine.plan.reference, w0,
                             label, skip=frozenset(m.name for m in engine.sel.measures))


def time_together(engine: Engine, states: Mapping[str, ModelState], results: Mapping[str, BranchResult],
                  chosen: str) -> tuple[dict[str, BranchResult], dict[str, Any]]:
    """Wall clock of all states, interleaved; then quality on the outputs those runs gave.
    Returns the results with those figures, and how the timing went (rounds, why it stopped, threads)."""
    if not TIMED_TOGETHER & {m.name for m in engine.sel.measures}:
        return dict(results), {}
    ctx, cfg, plan = engine.ctx, engine.ctx.config, engine.plan
    thresholds = []
    if "linear" in states and "iterative" in states:
        thresholds.append(("linear", "iterative", cfg.gates.latency_pct))
    if cfg.rollback.enabled:
        thresholds.append(("pre", chosen, cfg.rollback.latency_pct))
    with ctx.bus.stage("measure", state="MEASURED", branch="+".join(states), what="wall clock, interleaved") as meta:
        timed = interleaved_timing(ctx, states, thresholds)
        meta.update(rounds=timed.info["rounds"], stopped_at=timed.info["stopped_at"])
    out = dict(results)  # the control arms too, which are not timed
    for label, state in states.items():
        result = results[label].with_figures(timed.figures[label])
        if label == "pre" and plan.pre_quality:  # judged already, as the rate search's reference
            out[label] = attrs.evolve(result, quality=plan.pre_quality)
            continue
        with ctx.bus.stage("measure", state="MEASURED", branch=label, what="quality"):
            out[label] = attrs.evolve(result, quality=judge_quality(state, timed.outputs[label], plan.reference))
    return out, timed.info


def check_equivalence(ctx: RunContext, state: ModelState, reference: Any) -> dict[str, Any]:
    """How far π₀ moved the model's output (it must not: measured on every run)."""
    tolerance = ctx.config.pipeline.equivalence_tol
    with ctx.bus.stage("equivalence", state="PERMUTED") as meta:
        diff = float(state.workload.max_rel_diff(state.run(), reference))
        meta.update(max_rel_diff=diff, tolerance=tolerance)
    return {"max_rel_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance,
            "groups": len(state.groups), "what": "max |y(π₀) − y| / max |y| on the workload's batch"}


def check_finite(state: ModelState, reference: Any) -> None:
    """The unmodified model's output is finite, or one line saying so — never a NaN that the
    equivalence check would later blame on a permutation group."""
    if not float(state.workload.max_rel_diff(reference, reference)) == 0.0:  # NaN or inf compare unequal
        raise InputDataError(f"workload {state.workload.name!r}: the unmodified model's output holds NaN or inf on "
                             f"its judged batch (check the weights): there is nothing to compare a layout against")


def culprit(ctx: RunContext, state0: ModelState, state1: ModelState, reference: Any) -> str:
    """The first group whose π₀ alone moves the output past the tolerance, and by how much."""
    tolerance = ctx.config.pipeline.equivalence_tol
    for group in state0.groups:
        perm = np.asarray(state1.layout[group.name])
        if np.array_equal(perm, np.arange(perm.size)):
            continue
        diff = float(state0.workload.max_rel_diff(state0.permuted(group.name, perm).run(), reference))
        if diff > tolerance:
            return f"group {group.name} alone: max relative difference {diff:.3g} > {tolerance:g}"
    diff = float(state1.workload.max_rel_diff(state1.run(), reference))
    return f"max relative difference {diff:.3g} > {tolerance:g}, no single group alone"


def roll_back_to_pre(ctx: RunContext, trigger: str, why: list[str], branch: str, stack: UndoStack,
                     pre_state: ModelState | None, pre_digest: str) -> tuple[UndoStack, dict[str, Any]]:
    """Undo ``stack``; the stack at the restored state, and the record of how it went."""
    with ctx.bus.stage("rollback", state="ROLLBACK", trigger=trigger, branch=branch) as meta:
        restored, record = roll_back(stack, pre_state, pre_digest)
        meta.update(undone=record["undone"], failed=record["undo_failures"], verified=record["verified"])
    info = {"trigger": trigger, "branch": branch, "why": why, **record}
    ctx.write_artifact("rollback/rollback.json", dumps(info) + "\n")
    return UndoStack(restored), info


def permutations(engine: Engine | None, shared: Any, arms: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """π₀ (shared) and π₁ (an iterative arm's, composed) per group, with its size and block."""
    if engine is None or shared is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for group in shared.state.groups:
        entry = out[group.name] = {"size": group.size, "block": engine.blocks[group.name]}
        entry["pi0"] = shared.pi0[group.name]
        for arm in arms.values():
            if group.name in arm.pi1:
                entry["pi1"] = arm.pi1[group.name]
    return out


