"""Graph sources from real activity: ``activations``, ``mask`` and ``kv``.

``activations``: forward hooks over calibration batches; per token a group's accessed set is
its active dims (non-zero after ReLU, else the ``top_frac`` largest |activations|); W counts
co-access (or |correlation| of the activations), keeps each row's ``topk_per_row`` strongest
entries and is made symmetric by taking the larger of W_ij, W_ji. The accessed sets are kept
for ``lines_per_access`` and the capture is written to ``correlation/<group>.npz``; the
tokens of a held-out batch (never used for W) are what measures replay.
``mask``: dims read by the same output rows of the group's (pruned) weights, |M|ᵀ|M| — the
gather pattern of a sparse kernel. ``kv``: KV-cache tokens co-selected by attention (each
head's top cached positions per decoded token; every 4th decode step is held out of W). For a
KV-token group ``activations`` means the same as ``kv``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core import GraphW, PermutationGroup
from icd_core import tensors as T
from icd_core.artifacts import csr_npz_bytes
from icd_core.errors import ConfigError

KV_TOP = 16
HELDOUT_BATCHES = 1  # held-out calibration batches whose tokens measures replay
HELDOUT_EVERY = 4  # kv: every 4th decode step's queries are held out of W


def active_sets(acts: np.ndarray, relu: bool, top_frac: float) -> sp.csr_matrix:
    """Binary (tokens × dims) incidence of each token's accessed dims."""
    tokens, size = acts.shape
    if relu:
        return sp.csr_matrix((acts > 0).astype(np.float32))
    k = max(1, int(np.ceil(top_frac * size)))
    top = np.argpartition(-np.abs(acts), k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(tokens), k)
    return sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, top.ravel())), shape=(tokens, size))


def sparsify(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Each row's k largest off-diagonal entries, symmetrised by max(W, Wᵀ), float32."""
    n = dense.shape[0]
    dense = dense.astype(np.float64, copy=True)
    np.fill_diagonal(dense, 0)
    k = min(k, n - 1) if n > 1 else 0
    if k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    values = dense[rows, cols.ravel()]
    keep = values > 0
    w = sp.csr_matrix((values[keep], (rows[keep], cols.ravel()[keep])), shape=(n, n))
    w = w.maximum(w.T).tocsr()
    w.sort_indices()
    return w.astype(np.float32)


def accesses_of(incidence: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    return tuple(incidence.indices[incidence.indptr[i]:incidence.indptr[i + 1]].astype(np.int64).copy()
                 for i in range(incidence.shape[0]))


def co_access(incidence: sp.csr_matrix) -> np.ndarray:
    """AᵀA of a binary incidence, as a dense float32 product (BLAS; far faster than sparse here)."""
    dense = incidence.astype(np.float32).toarray()
    return dense.T @ dense


def _persist(ctx, group: str, w: sp.csr_matrix, incidence: sp.csr_matrix) -> None:
    if ctx.run_dir is not None:
        ctx.write_artifact(f"correlation/{group}.npz",
                           csr_npz_bytes({"W": w, "accesses": incidence.astype(np.float32).tocsr()}))


def activations_w(ctx, state, group: PermutationGroup) -> GraphW:
    workload = state.workload
    if group.kind == "kv_tokens":
        return kv_w(ctx, state, group)
    if not hasattr(workload, "capture"):
        raise ConfigError(f"graph.source: workload {workload.name!r} cannot capture activations")
    cfg = ctx.config.graph.activations
    probes = workload.probes.get(group.name, ())
    if not probes:
        raise ConfigError(f"graph.source: group {group.name!r} has no activation probe")
    acts = workload.capture(state, cfg.batches)[group.name]
    incidence = active_sets(acts, probes[0].relu, cfg.top_frac)
    if cfg.weight == "correlation":
        centred = acts - acts.mean(0)
        norm = np.sqrt((centred ** 2).sum(0))
        dense = np.abs(centred.T @ centred) / np.maximum(np.outer(norm, norm), 1e-30)
    else:
        dense = co_access(incidence)
    w = sparsify(dense, cfg.topk_per_row)
    _persist(ctx, group.name, w, incidence)
    held = workload.capture(state, HELDOUT_BATCHES, heldout=True).get(group.name) if workload.heldout else None
    heldout = accesses_of(active_sets(held, probes[0].relu, cfg.top_frac)) if held is not None else None
    meta = {"source": "activations", "tokens": int(acts.shape[0]), "weight": cfg.weight,
            "active_per_token": float(incidence.sum() / max(incidence.shape[0], 1)), "seed": ctx.seed,
            "heldout_tokens": len(heldout or ()), "shape": list(w.shape), "format": "csr", "nnz": int(w.nnz)}
    return GraphW(matrix=w, meta=meta, access_groups=accesses_of(incidence), heldout=heldout)


def mask_w(ctx, state, group: PermutationGroup) -> GraphW:
    """|M|ᵀ|M| over the group's input-dim weights: dims gathered by the same output rows."""
    rows = []
    for member in group.members:
        if member.role != "in" or member.offset or member.tiles != 1:
            continue
        w = T.to_numpy(state.tensors[member.tensor])
        moved = np.moveaxis(w != 0, member.axis, -1).reshape(-1, group.size)
        rows.append(sp.csr_matrix(moved.astype(np.float32)))
    if not rows:
        raise ConfigError(f"graph.source mask: group {group.name!r} has no weight reading it as input dim")
    incidence = sp.vstack(rows).tocsr()
    w = sparsify(co_access(incidence), ctx.config.graph.activations.topk_per_row)
    meta = {"source": "mask", "rows": int(incidence.shape[0]), "density": float(incidence.mean()),
            "shape": list(w.shape), "format": "csr", "nnz": int(w.nnz), "seed": None}
    return GraphW(matrix=w, meta=meta, access_groups=None)


def kv_w(ctx, state, group: PermutationGroup) -> GraphW:
    workload = state.workload
    if group.kind != "kv_tokens" or not hasattr(workload, "kv_accesses"):
        raise ConfigError(f"graph.source kv: group {group.name!r} is not a KV-cache token axis")
    steps, sets = workload.kv_accesses(state, KV_TOP)
    held = [s for step, s in zip(steps, sets) if step % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    sets = [s for step, s in zip(steps, sets) if step % HELDOUT_EVERY != HELDOUT_EVERY - 1] if held else sets
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    incidence = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, np.concatenate(sets))),
                              shape=(len(sets), group.size))
    w = sparsify(co_access(incidence), ctx.config.graph.activations.topk_per_row)
    _persist(ctx, group.name, w, incidence)
    meta = {"source": "kv", "queries": len(sets), "heldout_queries": len(held), "top": KV_TOP,
            "shape": list(w.shape), "format": "csr", "nnz": int(w.nnz), "seed": None}
    return GraphW(matrix=w, meta=meta, access_groups=accesses_of(incidence),
                  heldout=tuple(np.asarray(s, dtype=np.int64) for s in held) or None)


SOURCES = {"activations": activations_w, "mask": mask_w, "kv": kv_w}
