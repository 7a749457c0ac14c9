"""Applying the sparsity adapter to every targeted weight: in the layout's order where a
permutation group runs along its input dim, in natural order where none does.

N:M: the group's channels are first re-grouped by :func:`efficacy.search` (a permutation of
the whole group, so the model is unchanged before pruning), then each run of m keeps its n
best; afterwards only aligned runs of m may move. Unstructured: the ``rate`` lowest scores
go; the non-zeros are scattered, so W′ should come from the mask (|M|ᵀ|M|) for π₁ to gather
them into fewer tiles. Block: channels whose mass sits in the same row tiles are put side by
side first (TETRIS-style), then the weakest b×b tiles go. Execution stays dense (masked
weights) on CPU; the ``tiles`` measure reports what a BSR kernel would touch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from icd_core import Constraints, TransformMeta, TransformResult
from icd_core.toolkit import no_target_reason, plan_targets
from icd_core.toolkit import tensors as T

from .efficacy import DEFAULT_WORK, search
from .nm import block_mask, magnitude_mask, nm_mask, tile_scores
from .scores import ACTIVATION_SCORES, importance, input_norms


def _block_order(score2d: np.ndarray, b: int) -> np.ndarray:
    """Channels sorted by the row tile holding most of their mass, heaviest first."""
    rows = score2d.shape[0]
    padded = np.zeros((-(-rows // b) * b, score2d.shape[1]))
    padded[:rows] = score2d
    profile = padded.reshape(-1, b, score2d.shape[1]).sum(1)  # row tiles × channels
    dominant = profile.argmax(0)
    return np.lexsort((np.arange(score2d.shape[1]), -profile.max(0), dominant))


def apply_sparsity(ctx, state, layout, options, spec: str) -> TransformResult:
    if options.mode != "nm" and options.rate == 0:
        return TransformResult(state=state, meta=TransformMeta.skipped("sparsity", spec, "rate 0 prunes nothing"))
    multiple = options.m if options.mode == "nm" else 1
    plan = plan_targets(state, options.targets, options.ignore, multiple_of=multiple)
    skipped = list(plan.skipped)
    if options.mode == "nm":
        misaligned = _misaligned(state, plan.grouped, options.m)
        before = plan
        plan = plan.without(misaligned, state, options.m)
        skipped += [f"{g} (a slice starts off a multiple of {options.m}"
                    + ("; its weights in natural order)" if any(m.tensor in plan.natural for m in before.grouped[g])
                       else ")") for g in misaligned]
    if not plan:
        return TransformResult(state=state, meta=TransformMeta.skipped("sparsity", spec, no_target_reason(skipped)))
    targets = plan.grouped
    notes: list[str] = []
    pruned: set[str] = set()
    per_group: dict[str, Any] = {}
    constraints: dict[str, Constraints] = {}
    norms_of = {g: input_norms(ctx, state, g, notes) if options.score in ACTIVATION_SCORES else None for g in targets}
    may_permute = layout.permute and options.permute != "none"  # the identity arm: no channel re-ordering
    searched = _search_groups(ctx, state, layout, options, targets, norms_of) \
        if options.mode == "nm" and may_permute else {}
    for group, members in targets.items():
        norms = norms_of[group]
        size = state.group(group).size
        if group in searched:
            perm, stats = searched[group]
            state = state.permuted(group, perm)
            if norms is not None:
                norms = norms[perm]
            per_group[group] = {**stats, "permute": options.permute}
        elif options.mode == "block" and may_permute:
            a = _member_scores(state, members[0], size, options.score, norms)
            before = float(np.sort(tile_scores(a, options.block).ravel())[::-1][: _kept_tiles(a, options)].sum())
            perm = _block_order(a, options.block)
            state = state.permuted(group, perm)
            after_a = a[:, perm]
            after = float(np.sort(tile_scores(after_a, options.block).ravel())[::-1][: _kept_tiles(after_a, options)].sum())
            per_group[group] = {"kept_identity": before, "kept": after, "total": float(a.sum())}
        updates: dict[str, Any] = {}
        for member in members:
            w = T.to_numpy(state.tensors[member.tensor])
            positions = member.positions(size)
            view = np.take(w, positions, axis=member.axis)  # the member's slices (a head: its 32 inputs)
            score = importance(view, member.axis, options.score, _tiled(norms, member))
            mask = _mask(score, member.axis, options)
            pruned_w = w.copy()
            np.put_along_axis(pruned_w, _along(positions, member.axis, w.ndim),
                              np.where(mask, view, 0), axis=member.axis)
            updates[member.tensor] = T.numpy_like(pruned_w, state.tensors[member.tensor])
            per_group.setdefault(group, {})[f"{member.tensor}.density"] = float(mask.mean())
            pruned.add(member.tensor)
        state = state.with_tensors(updates)
        if options.mode == "nm":
            constraints[group] = Constraints(supernode=options.m)
        elif options.mode == "block" and size % options.block == 0:
            constraints[group] = Constraints(supernode=options.block)  # kept tiles stay whole and aligned
    natural = {}
    for tensor, axis in plan.natural.items():
        w = T.to_numpy(state.tensors[tensor])
        mask = _mask(importance(w, axis, options.score, None), axis, options)
        natural[tensor] = T.numpy_like(np.where(mask, w, 0), state.tensors[tensor])
        per_group.setdefault("natural order", {})[f"{tensor}.density"] = float(mask.mean())
        pruned.add(tensor)
    if plan.natural and options.score in ACTIVATION_SCORES:
        notes.append(f"score {options.score}: {len(plan.natural)} weight(s) outside every group have no captured "
                     f"inputs; scored without them (wanda: magnitude, ria: relative importance)")
    state = state.with_tensors(natural)
    new_state, meta = _finish(state, options, spec, per_group, constraints, skipped, notes, sorted(pruned), plan)
    return TransformResult(state=new_state, meta=meta)


def _mask(score: np.ndarray, axis: int, options) -> np.ndarray:
    """The keep-mask of one weight's scores along its input ``axis``."""
    if options.mode == "nm":
        return nm_mask(score, axis, options.n, options.m)
    if options.mode == "unstructured":
        return magnitude_mask(score, options.rate)
    moved = np.moveaxis(score, axis, -1)
    mask2d = block_mask(moved.reshape(-1, moved.shape[-1]), options.block, options.rate)
    return np.moveaxis(mask2d.reshape(moved.shape), -1, axis)


def _misaligned(state, targets, m: int) -> list[str]:
    """Groups with a slice that starts off a multiple of m (a kernel's runs of m along the
    whole axis are not the group's runs): their weights are pruned whole, in natural order."""
    out = []
    for group, members in targets.items():
        size = state.group(group).size
        if any(int(p) % m for mb in members for p in mb.positions(size)[::size]):
            out.append(group)
    return out


def _tiled(norms: np.ndarray | None, member) -> np.ndarray | None:
    """Per-channel norms repeated for each of the member's slices."""
    return None if norms is None else np.tile(norms, member.tiles)


def _along(positions: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return positions.reshape(shape)


def _member_scores(state, member, size: int, kind: str, norms: np.ndarray | None) -> np.ndarray:
    """Scores of a member's slices as (rows × size) blocks stacked (each slice's rows see the
    same group channels)."""
    view = np.take(T.to_numpy(state.tensors[member.tensor]), member.positions(size), axis=member.axis)
    rows = T.rows_along(importance(view, member.axis, kind, _tiled(norms, member)), member.axis)
    return np.vstack([rows[:, t * size:(t + 1) * size] for t in range(member.tiles)])


def _search_groups(ctx, state, layout, options, targets, norms_of) -> dict[str, tuple[np.ndarray, dict]]:
    """The N:M channel search of every group, run side by side on the machine's cores (the
    groups are independent and each search is seeded alike, so the result does not depend
    on the order threads finish in; numpy and scipy release the GIL in the heavy parts)."""
    def one(group: str) -> tuple[np.ndarray, dict]:
        members, norms = targets[group], norms_of[group]
        size = state.group(group).size
        a = np.vstack([_member_scores(state, m, size, options.score, norms) for m in members])
        blocks = layout.blocks.get(group) if options.permute == "blocks" else None
        return search(a, options.n, options.m, options.search_s, ctx.seed, blocks=blocks, rounds=options.rounds,
                      work=options.search_work or DEFAULT_WORK)

    groups = list(targets)
    with ThreadPoolExecutor(max_workers=max(1, min(len(groups), os.cpu_count() or 1))) as pool:
        return dict(zip(groups, pool.map(one, groups)))


def _kept_tiles(a: np.ndarray, options) -> int:
    count = tile_scores(a, options.block).size
    return count - int(round(options.rate * count))


def _finish(state, options, spec, per_group, constraints, skipped, notes, tensors, plan):
    if options.mode == "nm":
        kind, rate = f"{options.n}:{options.m}", 1.0 - options.n / options.m
        reason = (f"the {kind} mask changed what is co-accessed; only aligned groups of {options.m} may move")
        source = None
    elif options.mode == "unstructured":
        kind, rate = "unstructured", options.rate
        reason = "non-zeros are scattered over tiles; π₁ from the mask (|M|ᵀ|M|) can gather them"
        source = "mask"
    else:
        kind, rate = "block", options.rate
        reason = "surviving tiles fix what is read together; π₁ from the mask may move whole tiles only"
        source = "mask"
    meta = TransformMeta(
        adapter="sparsity", spec=spec,
        details={"sparsity": {"type": kind, "rate": rate, "score": options.score,
                              **({"block": options.block} if options.mode == "block" else {})}},
        repermute=True, repermute_reason=reason, w_source=source, constraints=constraints,
        stats={"groups": per_group, "skipped_groups": skipped, "notes": notes,
               "tensors": tensors, "weights": plan.counts(), "natural_order": sorted(plan.natural),
               "kernel": "dense masked weights on CPU; on CUDA the workload runs 2:4 semi-structured or "
                         "BSR kernels where torch has them (tiles measure: what BSR would touch)"})
    return state.with_transform({}, meta), meta
