"""One arm of a run as a value: from a start state, each adapter in turn (and, iterative, W′
and π₁ after every adapter that asks for it), returning a frozen :class:`ArmOutcome`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from icd_core.contract.errors import ContractError
from icd_core.contract.records import GraphW, TransformMeta
from icd_core.contract.state import ModelState
from icd_core.layout.permutations import identity, random_order
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.plugin.specs import ComponentSpec, resolve
from icd_core.run.arms import ARM, ArmPlan
from icd_core.run.context import RunContext
from icd_core.run.fits import PI0, PI1, W_DENSE, W_PRIME, Fitter
from icd_core.run.ratesearch import search_rate
from icd_core.run.rollback import UndoStack, restore, undo_permutation
from icd_core.run.selection import Selection


@attrs.frozen
class ArmOutcome:
    """Where an arm stands: its state, the undo steps that led there, what each adapter
    reported, every π fitted on the way (as metrics.json records them), π₀ and π₁ per group (π₁
    composed), W′ per group, and the rate search that chose its rate (``None``: no search)."""

    stack: UndoStack
    metas: tuple[TransformMeta, ...] = ()
    fits: tuple[dict[str, Any], ...] = ()
    pi0: Mapping[str, np.ndarray] = attrs.Factory(dict)
    pi1: Mapping[str, np.ndarray] = attrs.Factory(dict)
    w_prime: Mapping[str, GraphW] = attrs.Factory(dict)
    chain: tuple[str, ...] = ()
    search: Mapping[str, Any] | None = None

    @property
    def state(self) -> ModelState:
        return self.stack.state


@attrs.frozen
class Memo:
    """What two arms starting from one state share: each adapter's result on a state (keyed by
    the state object itself) and each rate-search trial that needed no re-permutation."""

    transformed: dict[tuple, Any] = attrs.Factory(dict)
    trials: dict[tuple, tuple] = attrs.Factory(dict)


@attrs.frozen
class Engine:
    """The settled run: its components, context, block sizes per group, solver and arm plan."""

    manager: PluginManager
    ctx: RunContext
    sel: Selection
    blocks: Mapping[str, int]
    fitter: Fitter
    plan: ArmPlan
    memo: Memo = attrs.Factory(Memo)

    def build_w(self, state: ModelState, stage: str, suggested: str | None = None) -> dict[str, GraphW]:
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

    def permute(self, at: ArmOutcome, w: Mapping[str, GraphW], stage: str, branch: str) -> ArmOutcome:
        """π of every group fitted on ``w`` and applied (π₁ composed with the π₁ before it)."""
        stack, fits, pi0, pi1 = at.stack, list(at.fits), dict(at.pi0), dict(at.pi1)
        for group in stack.state.groups:
            fit, record = self.fitter.fit(w[group.name], group.name, stack.state.constraints[group.name], stage,
                                          branch, at.chain)
            stack = stack.push(f"{stage}:{group.name}", undo_permutation(group.name, fit.perm),
                               stack.state.permuted(group.name, fit.perm))
            fits.append(record)
            if stage == PI0:
                pi0[group.name] = fit.perm
            else:
                pi1[group.name] = np.asarray(pi1.get(group.name, identity(group.size)))[fit.perm]
        return attrs.evolve(at, stack=stack, fits=tuple(fits), pi0=pi0, pi1=pi1)

    def transform(self, branch: str, spec: ComponentSpec, state: ModelState) -> tuple[ModelState, TransformMeta, Any]:
        """The adapter's new state, its meta and its undo (a failing adapter: a recorded no-op)."""
        key = (state, spec.key(), branch == ARM)  # the state itself: an id can be reused
        with self.ctx.bus.stage("transform", state="TRANSFORMED", adapter=spec.text, branch=branch) as meta:
            result = self.memo.transformed.get(key)  # compare mode: both branches start from one state
            meta["cache"] = "hit" if result is not None else "miss"
            if result is None:
                before = state.digest()
                layout = state.layout_for(self.blocks, permute=branch != ARM)
                try:
                    result = dispatch.apply_transform(self.manager, self.ctx, spec, state, layout)
                except Exception as exc:  # a failing adapter becomes a recorded no-op
                    result = exc
                if state.digest() != before:  # checked whether it raised or not
                    raise ContractError(f"adapter {spec.name!r} modified the state it was given in place "
                                        f"(adapters must return a new state; see state.with_transform)")
                self.memo.transformed[key] = result
            if isinstance(result, Exception):
                reason = f"{type(result).__name__}: {result}"
                self.ctx.bus.warn(f"adapter {spec.name} failed, recorded as a no-op: {reason}", branch=branch)
                meta.update(noop=True, reason=reason)
                return state, TransformMeta.skipped(spec.name, spec.text, reason), None
            meta.update(noop=result.meta.noop, reason=result.meta.reason, repermute=result.meta.repermute)
        if result.meta.noop:
            self.ctx.bus.warn(f"adapter {spec.name} did nothing: {result.meta.reason}", branch=branch)
        return result.state, result.meta, result.undo or restore(state)

    def step(self, branch: str, spec: ComponentSpec, at: ArmOutcome) -> ArmOutcome:
        """One adapter, then (iterative) W′ and π₁ when it asks for re-permutation."""
        state, meta, undo = self.transform(branch, spec, at.state)
        stack = at.stack if undo is None else at.stack.push(f"transform:{spec.name}", undo, state)
        at = attrs.evolve(at, stack=stack, metas=(*at.metas, meta), chain=(*at.chain, spec.key()))
        if branch == "iterative" and meta.repermute and not meta.noop:
            w_prime = self.build_w(state, W_PRIME, meta.w_source)
            at = self.permute(attrs.evolve(at, w_prime={**at.w_prime, **w_prime}), w_prime, PI1, branch)
        return at

    def steps(self, branch: str, specs: tuple[ComponentSpec, ...], at: ArmOutcome) -> ArmOutcome:
        for spec in specs:
            at = self.step(branch, spec, at)
        return at

    def arm(self, branch: str, start: UndoStack) -> ArmOutcome:
        """The branch from ``start``: every adapter in order; the one with an ``auto`` rate (and
        the adapters after it) at the rate the search chose."""
        at = ArmOutcome(stack=start)
        auto = self.plan.auto_index
        if auto is None:
            return self.steps(branch, self.sel.adapters, at)
        return search_rate(self, branch, self.steps(branch, self.sel.adapters[:auto], at))

    def control(self, branch: str, start: UndoStack) -> ArmOutcome:
        """A control arm: every group in a random function-preserving order (seeded by the run
        seed and the arm's name) where π₀ would be, then the adapters as the linear arm runs them."""
        stack = start
        for group in stack.state.groups:
            perm = random_order(group.size, stack.state.constraints[group.name], self.ctx.rng(branch, group.name),
                                f"{branch} order of group {group.name}")
            stack = stack.push(f"{branch}:{group.name}", undo_permutation(group.name, perm),
                               stack.state.permuted(group.name, perm))
        return self.steps(branch, self.sel.adapters, ArmOutcome(stack=stack))

    def first_fit(self, start: UndoStack, w0: Mapping[str, GraphW]) -> ArmOutcome:
        """π₀ of every group, shared by the permuted arms."""
        return self.permute(ArmOutcome(stack=start), w0, PI0, "shared")
