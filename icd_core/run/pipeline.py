"""The run: READY → W_BUILT → PERMUTED → TRANSFORMED → REPERMUTED → MEASURED → REPORTED.

``linear`` applies π₀ then the transforms; ``iterative`` re-builds W′ and re-permutes (π₁,
respecting the constraints a transform left) after every transform that asks for it;
``compare`` runs both from the same π₀ state, inputs and seed. A failing stage, or a final
state whose paired comparison with the pre-run state breaches a rollback tolerance, runs the
registered undos in reverse and restores the pre-run state (π_prev); a restoration that does
not verify bit for bit fails the run.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import attrs
import numpy as np

from icd_core.config.files import config_to_dict
from icd_core.contract.abilities import SuggestsRate
from icd_core.contract.errors import (
    ArtifactWriteError,
    ConfigError,
    ContractError,
    InputDataError,
    SolverTimeout,
    UsageError,
)
from icd_core.contract.jsonify import dumps
from icd_core.contract.records import KV_TOKENS, Accesses, FitResult, GraphW, TransformMeta
from icd_core.contract.state import ModelState
from icd_core.layout.permutations import identity
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.plugin.specs import resolve
from icd_core.report.document import metrics_document, perm_document
from icd_core.report.finished import FinishedRun
from icd_core.run.artifacts import RunDirectory, csr_npz_bytes
from icd_core.run.context import RunContext, solver_budget
from icd_core.run.events import EventBus
from icd_core.run.measuring import interleaved_timing, judge_quality, measure_state
from icd_core.run.permcache import PermutationCache, matrix_digest, version_tag
from icd_core.run.ratesearch import Trial, judge_drop, search
from icd_core.run.results import BranchResult
from icd_core.run.rollback import UndoStack, restore, roll_back, undo_permutation
from icd_core.run.selection import Selection, settle
from icd_core.run.tolerances import regressions

BRANCHES_OF_MODE = {"linear": ("linear",), "iterative": ("iterative",), "compare": ("linear", "iterative")}
ARM = "identity"
"""The transform with no permutation at all (run beside the others in an equal-quality comparison)."""


@attrs.define
class Outcome:
    """What a run produced: the record, where it lives, and whether every stage succeeded."""

    record: FinishedRun
    path: Any
    ok: bool
    error: str | None = None
    states: dict[str, ModelState] = attrs.Factory(dict)
    """Each arm's final state by name (``pre``: the loaded model), for an export."""
    kept: str | None = None
    """The arm whose state the run handed back (``pre`` after a rollback; ``None``: it failed)."""


# The stages of a layout, as recorded in metrics.json ("fits") and in permutation-cache keys.
W_DENSE = "W"  # W of the pre-run state
W_PRIME = "W'"  # W′ of a transformed state (iterative mode)
PI0 = "pi0"  # π₀, fitted on W
PI1 = "pi1"  # π₁, fitted on W′ (composed with what came before)


def keep_if_better(fit: FitResult, n: int) -> FitResult:
    """A π whose block cost is worse than the order it started from is not applied."""
    before, after = fit.stats.get("C_initial"), fit.stats.get("C")
    if before is None or after is None or after <= before:
        return fit
    stats = {**fit.stats, "rejected": f"C {after:.4f} > {before:.4f} of the current order: kept it",
             "C": before, "Q": fit.stats.get("Q_initial"), "improved": False}
    return FitResult(perm=identity(n), stats=stats)


def timeout_note(fit: FitResult, budget: float) -> str:
    """What a solver that hit its budget left in place (printed and recorded)."""
    if fit.stats.get("rejected") or fit.stats.get("C") is None:
        return f"hit its {budget:g} s budget: kept the current order"
    return f"hit its {budget:g} s budget: kept its best order so far (C {fit.stats['C_initial']:.4f} → {fit.stats['C']:.4f})"


@attrs.frozen
class ArmPlan:
    """What the loaded workload and the config decide before any branch runs: the branches,
    the adapter whose rate is searched (``auto_index``), what decides the search (metric and
    limit), the dense model's output (``reference``) and its quality."""

    branches: tuple[str, ...]
    auto_index: int | None = None
    rate_metric: str = ""
    rate_limit: float = 0.0
    reference: Any = None
    pre_quality: dict[str, Any] = attrs.Factory(dict)


class Pipeline:
    """One run of the selected components into ``run_dir`` (a fresh, open RunDirectory)."""

    def __init__(self, manager: PluginManager, selection: Selection, run_dir: RunDirectory,
                 bus: EventBus | None = None) -> None:
        self.manager = manager
        self.sel = selection
        self.cfg = selection.config
        self.run_dir = run_dir
        self.ctx = RunContext(config=self.cfg, registry=manager.registry,
                              bus=bus or EventBus(run_dir.file("events.jsonl"), run_dir.shown("events.jsonl")),
                              run_dir=run_dir)
        self.cache = PermutationCache.at(run_dir.out_dir / ".cache" / "perm" if self.cfg.solver.cache else None,
                                         self.ctx.bus)
        settings = config_to_dict(self.cfg)
        solver = manager.registry.get("solver", self.sel.solver.name)
        self.solver_key = version_tag(self.sel.solver.key(), dumps(settings["solver"]),
                                      manager.code_version(solver.provider))
        self.tag = ""
        self.fits: list[dict[str, Any]] = []
        self.perms: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, int] = {}
        self.w_prime: dict[str, GraphW] = {}
        self.active: UndoStack | None = None  # the steps of the branch under way: what a failure rolls back
        self.pre_state: ModelState | None = None
        self.interleaved = frozenset({"wallclock"}) if any(m.name == "wallclock" for m in selection.measures) \
            else frozenset()
        self.transformed: dict[tuple[ModelState, str, bool], Any] = {}  # keyed by the input state object
        self.searches: dict[str, dict[str, Any]] = {}
        self.trials: dict[tuple[ModelState, int, float], tuple] = {}
        self.plan = ArmPlan(branches=BRANCHES_OF_MODE[self.cfg.pipeline.mode])

    # -- stages --------------------------------------------------------------------------
    def _settle(self, state0: ModelState) -> None:
        """Resolve what the loaded workload decides (auto source, repeats); tag the run."""
        self.sel = settle(self.sel, self.manager.registry, state0.workload)
        self.cfg = self.ctx.config = self.sel.config
        self.tag = version_tag(self.sel.workload.key(), self.sel.graph.key(), dumps(config_to_dict(self.cfg)["graph"]),
                               *(a.key() for a in self.sel.adapters), str(self.cfg.seed),
                               *(f"{p['distribution']}=={p['version']}" for p in self.manager.loaded()
                                 if p["status"] == "ok" and not p["builtin"]))
        self.ctx.write_artifact("config.json", dumps(config_to_dict(self.cfg)) + "\n")

    def _build_w(self, state: ModelState, stage: str, suggested: str | None = None) -> dict[str, GraphW]:
        """W of every group; for W′ the configured reperm source, else the transform's choice."""
        out = {}
        source = self.sel.graph
        if stage != W_DENSE:
            if self.sel.graph_prime is not None:
                source = self.sel.graph_prime
            elif suggested is not None:
                source = resolve(self.manager.registry, "graph", suggested, prefix="w_source")
        for group in state.groups:
            with self.ctx.bus.stage("build_w", state="W_BUILT" if stage == W_DENSE else "REPERMUTED",
                                    matrix=stage, group=group.name, source=source.name) as meta:
                w = dispatch.build_w(self.manager, self.ctx, source, state, group)
                out[group.name] = attrs.evolve(w, block=self.blocks[group.name])
                meta.update({k: v for k, v in w.meta.items() if k != "shape"}, n=w.n,
                            heldout=len(w.heldout) if w.heldout else 0)
                self.ctx.bus.counter("nnz", int(w.matrix.nnz), group=group.name, matrix=stage)
        return out

    def _fit(self, w: GraphW, group: str, constraints, stage: str, branch: str, chain: tuple[str, ...]) -> FitResult:
        key = version_tag(self.tag, self.solver_key, matrix_digest(w.matrix), group, stage,
                          repr(attrs.astuple(constraints)), *chain)
        with self.ctx.bus.stage("fit_permutation", state="PERMUTED" if stage == PI0 else "REPERMUTED",
                                pi=stage, group=group, branch=branch, solver=self.sel.solver.name) as meta:
            fit = self.cache.get(key, w.n)
            meta["cache"] = "hit" if fit is not None else "miss"
            if fit is None:
                try:
                    fit = dispatch.fit_permutation(self.manager, self.ctx, self.sel.solver, w, constraints)
                except SolverTimeout as exc:
                    fit = FitResult(perm=identity(w.n), stats={"method": self.sel.solver.name, "timed_out": True,
                                                               "reason": str(exc), "C": None, "time_s": None})
                self.cache.put(key, fit)
            fit = keep_if_better(fit, w.n)
            if fit.stats.get("timed_out"):
                note = timeout_note(fit, fit.stats.get("budget_s") or solver_budget(self.cfg.solver.time_budget_s, w.n))
                fit = FitResult(perm=fit.perm, stats={**fit.stats, "kept": note})
                self.ctx.bus.warn(f"solver {self.sel.solver.name} {note}", group=group, pi=stage)
            meta.update({k: fit.stats.get(k) for k in ("C_initial", "C", "Q", "time_s", "budget_s", "timed_out")})
        self.fits.append({"branch": branch, "stage": stage, "group": group, "cache": meta["cache"],
                          "stats": dict(fit.stats)})
        return fit

    def _permute(self, state: ModelState, w: dict[str, GraphW], stage: str, branch: str,
                 stack: UndoStack, chain: tuple[str, ...] = ()) -> ModelState:
        for group in state.groups:
            fit = self._fit(w[group.name], group.name, state.constraints[group.name], stage, branch, chain)
            state = state.permuted(group.name, fit.perm)
            stack.push(f"{stage}:{group.name}", undo_permutation(group.name, fit.perm), state)
            entry = self.perms.setdefault(group.name, {"size": group.size, "block": self.blocks[group.name]})
            if stage == PI0:
                entry[PI0] = fit.perm
            else:
                previous = entry.get(PI1, identity(group.size))
                entry[PI1] = np.asarray(previous)[fit.perm]
        return state

    def _transform(self, branch: str, spec, state: ModelState, stack: UndoStack) -> tuple[ModelState, TransformMeta]:
        key = (state, spec.key(), branch == "identity")  # the state itself: an id can be reused
        with self.ctx.bus.stage("transform", state="TRANSFORMED", adapter=spec.text, branch=branch) as meta:
            result = self.transformed.get(key)  # compare mode: both branches start from one state
            meta["cache"] = "hit" if result is not None else "miss"
            if result is None:
                before = state.digest()
                layout = state.layout_for(self.blocks, permute=branch != "identity")
                try:
                    result = dispatch.apply_transform(self.manager, self.ctx, spec, state, layout)
                except Exception as exc:  # a failing adapter becomes a recorded no-op
                    result = exc
                if state.digest() != before:  # checked whether it raised or not
                    raise ContractError(f"adapter {spec.name!r} modified the state it was given in place "
                                        f"(adapters must return a new state; see state.with_transform)")
                self.transformed[key] = result
            if isinstance(result, Exception):
                reason = f"{type(result).__name__}: {result}"
                self.ctx.bus.warn(f"adapter {spec.name} failed, recorded as a no-op: {reason}", branch=branch)
                meta.update(noop=True, reason=reason)
                return state, TransformMeta.skipped(spec.name, spec.text, reason)
            meta.update(noop=result.meta.noop, reason=result.meta.reason, repermute=result.meta.repermute)
        if result.meta.noop:
            self.ctx.bus.warn(f"adapter {spec.name} did nothing: {result.meta.reason}", branch=branch)
        stack.push(f"transform:{spec.name}", result.undo or restore(state), result.state)
        return result.state, result.meta

    def _step(self, branch: str, spec, state: ModelState, stack: UndoStack, chain: tuple[str, ...],
              metas: list[TransformMeta]) -> tuple[ModelState, tuple[str, ...]]:
        """One adapter, then (iterative) W′ and π₁ when it asks for re-permutation."""
        state, meta = self._transform(branch, spec, state, stack)
        metas.append(meta)
        chain += (spec.key(),)
        if branch == "iterative" and meta.repermute and not meta.noop:
            w_prime = self._build_w(state, W_PRIME, meta.w_source)
            self.w_prime.update(w_prime)
            state = self._permute(state, w_prime, PI1, branch, stack, chain)
        return state, chain

    def _branch(self, branch: str, state: ModelState, stack: UndoStack) -> tuple[ModelState, list[TransformMeta]]:
        metas: list[TransformMeta] = []
        chain: tuple[str, ...] = ()
        for index, spec in enumerate(self.sel.adapters):
            if index == self.plan.auto_index:
                return self._search(branch, index, state, stack, chain, metas)
            state, chain = self._step(branch, spec, state, stack, chain, metas)
        return state, metas

    def _search(self, branch: str, index: int, state: ModelState, stack: UndoStack, chain: tuple[str, ...],
                metas: list[TransformMeta]) -> tuple[ModelState, list[TransformMeta]]:
        """The arm at the most aggressive rate of adapter ``index`` whose quality loss stays
        within the rate limit (the adapters after it re-run for every trial)."""
        spec, limit, plan = self.sel.adapters[index], self.plan.rate_limit, self.plan
        knob = spec.options.auto_knob(state)
        outcomes: dict[float, tuple] = {}

        def evaluate(value: float) -> Trial:
            memo = self.trials.get((state, index, value))
            if memo is not None:  # another arm evaluated this very state at this value, with no π₁ in between
                outcomes[value] = memo[:4]
                return memo[4]
            trial_stack, trial_metas, saved = stack.copy(), list(metas), (copy.deepcopy(self.perms), dict(self.w_prime))
            fits_before = len(self.fits)
            candidate = attrs.evolve(spec, options=attrs.evolve(spec.options, **{knob.name: value}),
                                     text=f"{spec.text} ({knob.name}={value:g})")
            final, trial_chain = self._step(branch, candidate, state, trial_stack, chain, trial_metas)
            for later in self.sel.adapters[index + 1:]:
                final, trial_chain = self._step(branch, later, final, trial_stack, trial_chain, trial_metas)
            figure = judge_quality(final, final.run(), plan.reference).get(plan.rate_metric)
            if figure is None:
                raise ContractError(f"execution.rate_metric {plan.rate_metric!r}: the workload reports no such quality")
            outcomes[value] = (final, trial_stack, trial_metas, (copy.deepcopy(self.perms), dict(self.w_prime)))
            self.perms, self.w_prime = saved
            trial = judge_drop(plan.rate_metric, plan.pre_quality[plan.rate_metric], figure, limit, value, self.cfg.seed)
            if len(self.fits) == fits_before:  # no re-permutation: the result depends on (state, value) only
                self.trials[(state, index, value)] = (*outcomes[value], trial)
            return trial

        with self.ctx.bus.stage("rate_search", branch=branch, adapter=spec.text, knob=knob.name) as meta:
            value, trials = search(knob, evaluate, self.cfg.execution.rate_evaluations)
            meta.update(chosen=value, trials=len(trials))
        final, trial_stack, chosen_metas, (self.perms, self.w_prime) = outcomes[value]
        stack.steps[:], stack.state = trial_stack.steps, final
        met = any(t.ok for t in trials if t.value == value)
        self.searches[branch] = {"adapter": spec.text, "knob": knob.name, "chosen": value, "met": met,
                                 "metric": plan.rate_metric, "limit": limit, "rule": "upper end of the 95 % CI "
                                 "of the paired quality loss vs dense <= limit", "evaluations": len(trials),
                                 "max_evaluations": self.cfg.execution.rate_evaluations,
                                 "trials": [t.to_json() for t in trials]}
        if not met:
            self.ctx.bus.warn(f"{branch}: no {knob.name} of {spec.name} keeps {plan.rate_metric} within "
                              f"{limit:g}; kept the gentlest ({value:g})")
        return final, chosen_metas

    def _plan_arms(self, state0: ModelState, reference: Any) -> ArmPlan:
        """Which branches run: an ``identity`` arm too (compare mode, any transform); which
        adapter (one at most) has an ``auto`` rate, and what decides the search (metric, limit, the dense model's quality)."""
        if self.cfg.execution.backend == "paged" and not any(g.kind == KV_TOKENS for g in state0.groups):
            raise ConfigError(f"execution.backend paged: workload {self.sel.workload.text!r} has no KV-cache group "
                              f"to read in pages (a decoder with its cache's token axis, e.g. smollm2:groups=kv)")
        for spec in self.sel.adapters:  # an adapter's own word on options that cannot apply to this state
            check = getattr(spec.options, "check_state", None)
            if check is not None:
                check(state0)
        auto = [i for i, spec in enumerate(self.sel.adapters)
                if getattr(spec.options, "auto_knob", None) is not None and spec.options.auto_knob(state0) is not None]
        if len(auto) > 1:
            raise ConfigError("transform.adapters: only one adapter may have an auto rate (got "
                              + ", ".join(self.sel.adapters[i].text for i in auto) + ")")
        auto_index = auto[0] if auto else None
        branches = BRANCHES_OF_MODE[self.cfg.pipeline.mode]
        # Compare mode always runs the transform in natural order too: what layout bought at the
        # user's rate (quality here; the rate itself when it is searched) leads the card.
        branches = ((ARM,) if self.sel.adapters and self.cfg.pipeline.mode == "compare" else ()) + branches
        workload = state0.workload
        suggested = workload.rate_metric if isinstance(workload, SuggestsRate) else None
        rate_metric = self.cfg.execution.rate_metric or suggested or workload.primary_quality
        rate_limit = self.cfg.execution.rate_limit if self.cfg.execution.rate_limit is not None else \
            workload.rate_limit if suggested is not None and rate_metric == suggested else None
        if rate_limit is None:
            rate_limit = self.cfg.gates.quality_drop_pp
        pre_quality: dict[str, Any] = {}
        if auto_index is not None:
            with self.ctx.bus.stage("measure", state="MEASURED", branch="pre", what="quality (rate search reference)"):
                pre_quality = judge_quality(state0, reference, reference)
            if rate_metric not in pre_quality:
                raise ConfigError(f"execution.rate_metric: {rate_metric!r} is not a quality figure of workload "
                                  f"{workload.name!r} (it reports: {', '.join(sorted(pre_quality))})")
        return ArmPlan(branches=branches, auto_index=auto_index, rate_metric=rate_metric, rate_limit=rate_limit,
                       reference=reference, pre_quality=pre_quality)

    def _equivalence(self, state: ModelState, reference: Any) -> dict[str, Any]:
        """How far π₀ moved the model's output (it must not: measured on every run)."""
        tolerance = self.cfg.pipeline.equivalence_tol
        with self.ctx.bus.stage("equivalence", state="PERMUTED") as meta:
            diff = float(state.workload.max_rel_diff(state.run(), reference))
            meta.update(max_rel_diff=diff, tolerance=tolerance)
        result = {"max_rel_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance,
                  "groups": len(state.groups), "what": "max |y(π₀) − y| / max |y| on the workload's batch"}
        return result

    def _culprit(self, state0: ModelState, state1: ModelState, reference: Any) -> str:
        """The first group whose π₀ alone moves the output past the tolerance, and by how much."""
        tolerance = self.cfg.pipeline.equivalence_tol
        for group in state0.groups:
            perm = np.asarray(state1.layout[group.name])
            if np.array_equal(perm, np.arange(perm.size)):
                continue
            diff = float(state0.workload.max_rel_diff(state0.permuted(group.name, perm).run(), reference))
            if diff > tolerance:
                return f"group {group.name} alone: max relative difference {diff:.3g} > {tolerance:g}"
        diff = float(state1.workload.max_rel_diff(state1.run(), reference))
        return f"max relative difference {diff:.3g} > {tolerance:g}, no single group alone"

    def _measure(self, label: str, state: ModelState, reference: Any, w0: dict[str, GraphW]) -> BranchResult:
        """Every measure but the wall clock, which times all states together afterwards (and
        then hands each state's output to the quality judgement)."""
        with self.ctx.bus.stage("measure", state="MEASURED", branch=label):
            return measure_state(self.manager, self.ctx, self.sel.measures, state, reference, w0, label,
                                 skip=self.interleaved, with_quality=not self.interleaved)

    def _time_together(self, states: dict[str, ModelState], results: dict[str, BranchResult], chosen: str,
                       reference: Any) -> dict[str, Any]:
        """Wall clock of all states, interleaved; then quality on the outputs those runs gave.
        Returns how the timing went (rounds, why it stopped, threads)."""
        if not self.interleaved:
            return {}
        thresholds = []
        if "linear" in states and "iterative" in states:
            thresholds.append(("linear", "iterative", self.cfg.gates.latency_pct))
        if self.cfg.rollback.enabled:
            thresholds.append(("pre", chosen, self.cfg.rollback.latency_pct))
        outputs: dict[str, Any] = {}
        with self.ctx.bus.stage("measure", state="MEASURED", branch="+".join(states),
                                what="wall clock, interleaved") as meta:
            timing = interleaved_timing(self.ctx, states, results, thresholds, outputs)
            meta.update(rounds=timing["rounds"], stopped_at=timing["stopped_at"])
        for label, state in states.items():
            if label == "pre" and self.plan.pre_quality:  # judged already, as the rate search's reference
                results[label] = attrs.evolve(results[label], quality=self.plan.pre_quality)
                continue
            with self.ctx.bus.stage("measure", state="MEASURED", branch=label, what="quality"):
                results[label] = attrs.evolve(results[label], quality=judge_quality(state, outputs[label], reference))
        return timing

    def _rollback(self, trigger: str, why: list[str], branch: str, stack: UndoStack, pre_digest: str) -> dict[str, Any]:
        """Undo ``stack`` (it is then at the restored state) and record how it went."""
        with self.ctx.bus.stage("rollback", state="ROLLBACK", trigger=trigger, branch=branch) as meta:
            _, record = roll_back(stack, self.pre_state, pre_digest)
            meta.update(undone=record["undone"], failed=record["undo_failures"], verified=record["verified"])
        info = {"trigger": trigger, "branch": branch, "why": why, **record}
        self.ctx.write_artifact("rollback/rollback.json", dumps(info) + "\n")
        return info

    # -- the run -------------------------------------------------------------------------
    def run(self) -> Outcome:
        """Run every stage; raises only on bad input (UsageError, InputDataError)."""
        try:
            return self._run()
        finally:
            self.ctx.bus.close()

    def _run(self) -> Outcome:
        started, t0 = datetime.now(UTC), time.perf_counter()
        ctx = self.ctx
        results: dict[str, BranchResult] = {}
        rollback = None
        error = None
        pre_digest = None
        equivalence: dict[str, Any] | None = None
        timing: dict[str, Any] = {}
        finals: dict[str, ModelState] = {}
        chosen = ""
        try:
            with ctx.bus.stage("load_workload", state="READY", workload=self.sel.workload.text) as meta:
                state0 = dispatch.load_workload(self.manager, ctx, self.sel.workload)
                meta.update(groups={g.name: g.size for g in state0.groups}, tokens=state0.workload.tokens)
            self._settle(state0)
            self.blocks = {g.name: ctx.block_size(state0.element_bytes(g.name)) for g in state0.groups}
            self.active, self.pre_state = UndoStack(state0), state0
            reference = state0.run()
            self.plan = self._plan_arms(state0, reference)
            w0 = self._build_w(state0, W_DENSE)
            state0 = attrs.evolve(state0, accesses={k: a for k, a in ((k, Accesses.of(v)) for k, v in w0.items())
                                                    if a is not None})
            self.active, self.pre_state = UndoStack(state0), state0  # the same state, with its accesses
            ctx.write_artifact("W.npz", csr_npz_bytes({k: v.matrix for k, v in w0.items()}))
            results["pre"] = self._measure("pre", state0, reference, w0)
            pre_digest = results["pre"].state_digest
            shared = self.active = UndoStack(state0)
            state1 = self._permute(state0, w0, PI0, "shared", shared)
            equivalence = self._equivalence(state1, reference)
            if not equivalence["ok"]:
                raise ContractError(f"π₀ changed the output of workload {self.sel.workload.name!r} "
                                    f"({state0.workload.name}): {self._culprit(state0, state1, reference)} "
                                    f"(a permutation group misses a member)")
            finals = {"pre": state0}
            stacks: dict[str, UndoStack] = {}
            for branch in self.plan.branches:
                stack = self.active = stacks[branch] = UndoStack(state0) if branch == ARM else shared.copy()
                final, metas = self._branch(branch, stack.state, stack)
                finals[branch] = final
                results[branch] = attrs.evolve(self._measure(branch, final, reference, w0), transforms=tuple(metas))
            chosen = "linear" if self.cfg.pipeline.mode == "linear" else "iterative"
            self.active = stacks[chosen]  # the state the run hands back, unless rolled back
            timing = self._time_together(finals, results, chosen, reference)
            if self.w_prime:
                ctx.write_artifact("W_prime.npz", csr_npz_bytes({k: v.matrix for k, v in self.w_prime.items()}))
            why = regressions(results["pre"], results[chosen], self.cfg.rollback, self.cfg.gates.allow_modelled,
                              self.cfg.seed)
            if why and self.cfg.rollback.enabled:
                rollback = self._rollback("regression", why, chosen, stacks[chosen], pre_digest)
        except (UsageError, InputDataError, ArtifactWriteError):
            raise  # bad input, or the run directory cannot be written: the caller abandons it
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self.active is not None and pre_digest is not None:
                rollback = self._rollback("failure", [error], "current", self.active, pre_digest)
        if rollback is not None and not rollback["verified"]:
            error = (f"{error}; " if error else "") + \
                f"rollback NOT verified: the restored state's digest {rollback['state_digest'][:12]}… differs " \
                f"from the pre-run state's {rollback['expected_digest'][:12]}…"
        if "config.json" not in ctx.written:  # the run failed before the workload settled the config
            ctx.write_artifact("config.json", dumps(config_to_dict(self.cfg)) + "\n")
        final_digest = self.active.state.digest() if self.active else None
        kept = None if error else ("pre" if rollback else chosen)
        metrics = metrics_document(
            cfg=self.cfg, sel=self.sel, bus=ctx.bus, name=self.run_dir.name, tag=self.tag, started=started,
            duration=time.perf_counter() - t0, results=results, fits=self.fits, rollback=rollback, error=error,
            final_digest=final_digest, equivalence=equivalence, timing=timing, searches=self.searches,
            rate_metric=self.plan.rate_metric or None, plugins=self.manager.loaded())
        self.ctx.write_artifact("perm.json", dumps(perm_document(self.tag, self.perms, rollback), indent=None) + "\n")
        record = FinishedRun(metrics=metrics, events=list(ctx.bus.events))
        with ctx.bus.stage("report", state="REPORTED"):
            failure = dispatch.write_reports(self.manager, ctx, record)
        if failure:
            error = (f"{error}; " if error else "") + failure
        return Outcome(record=record, path=self.run_dir.path, ok=error is None, error=error,
                       states=finals if kept else {}, kept=kept)
