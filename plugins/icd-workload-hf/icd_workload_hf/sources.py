"""Graph sources from real activity: ``activations``, ``mask`` and ``kv``.

``activations``: forward hooks over calibration batches; per token a group's accessed set is
its active dims (non-zero after ReLU, else the ``top_frac`` largest |activations|); W counts
co-access (or |correlation| of the activations), keeps each row's ``topk_per_row`` strongest
entries and is made symmetric by taking the larger of W_ij, W_ji. The accessed sets are kept
for ``lines_per_access`` and the capture is written to ``correlation/<group>.npz``; the
tokens of a held-out batch (never used for W) are what measures replay.
``mask``: dims read by the same output rows of the group's (pruned) weights, |M|ᵀ|M| — the
gather pattern of a sparse kernel. ``kv``: per (layer, KV head) cache, tokens co-selected by the
prefill's last queries plus key-similarity edges; the decoding queries are held out. For a
KV-token group ``activations`` means the same as ``kv``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core import KV_TOKENS, CapturesActivations, ConfigError, GraphW, PermutationGroup, ReplaysKvAccesses
from icd_core.toolkit import csr_npz_bytes
from icd_core.toolkit import tensors as T

KV_TOP = 64  # kv: strongest positions per calibration query counted as co-selected
KV_HELDOUT_TOP = 16  # kv: positions per decoding query replayed by measures
KV_KNN = 8  # kv: nearest keys by cosine joined to each key
HELDOUT_BATCHES = 1  # held-out calibration batches whose tokens measures replay


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
    """AᵀA of a binary incidence as a dense float32 array: a BLAS product when the incidence
    is dense enough (activations: ~10 % of dims per token), a sparse one when it is not (KV
    co-selection: 64 of thousands of tokens per query)."""
    incidence = incidence.astype(np.float32)
    if incidence.nnz > 0.05 * incidence.shape[0] * incidence.shape[1]:
        dense = incidence.toarray()
        return dense.T @ dense
    return (incidence.T @ incidence).toarray()


def _persist(ctx, group: str, w: sp.csr_matrix, incidence: sp.csr_matrix) -> None:
    if ctx.run_dir is not None:
        ctx.write_artifact(f"correlation/{group}.npz",
                           csr_npz_bytes({"W": w, "accesses": incidence.astype(np.float32).tocsr()}))


def activations_w(ctx, state, group: PermutationGroup) -> GraphW:
    workload = state.workload
    if group.kind == KV_TOKENS:
        return kv_w(ctx, state, group)
    if not isinstance(workload, CapturesActivations):
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
    """Co-selection of the group's cached tokens by the calibration queries (each one's
    ``KV_TOP`` strongest positions, counted; each token keeps its ``topk_per_row`` strongest
    partners) plus key-similarity edges (each key's ``KV_KNN`` nearest keys by cosine, at the
    mean co-selection weight): pages of tokens that are read together and whose keys a page
    summary describes well. Held out: the decoding queries' choices. Sparse throughout (the
    co-selection counts of 8k tokens never become a dense 8k × 8k array)."""
    workload = state.workload
    if group.kind != KV_TOKENS or not isinstance(workload, ReplaysKvAccesses):
        raise ConfigError(f"graph.source kv: group {group.name!r} is not a KV-cache token axis")
    sets = workload.kv_accesses(state, group.name, KV_TOP, calibration=True)
    incidence = sp.csr_matrix((np.ones(sets.size, dtype=np.float32), sets.ravel(),
                               np.arange(0, sets.size + 1, sets.shape[1])), shape=(len(sets), group.size))
    counts = (incidence.T @ incidence).tocsr()
    counts.setdiag(0)
    selected = row_top(counts, ctx.config.graph.activations.topk_per_row)
    weight = float(selected.data.mean()) if selected.nnz else 1.0
    w = (selected + key_neighbours(workload.kv_keys(state, group.name), KV_KNN, weight)).tocsr()
    w.setdiag(0)
    w.eliminate_zeros()
    w.sort_indices()
    heldout = workload.kv_accesses(state, group.name, KV_HELDOUT_TOP, calibration=False)
    _persist(ctx, group.name, w, incidence)
    meta = {"source": "kv", "queries": len(sets), "heldout_queries": len(heldout), "top": KV_TOP, "knn": KV_KNN,
            "shape": list(w.shape), "format": "csr", "nnz": int(w.nnz), "seed": None}
    return GraphW(matrix=w.astype(np.float32), meta=meta, access_groups=accesses_of(incidence),
                  heldout=tuple(heldout))


ROW_BLOCK = 1024  # rows made dense at a time by row_top and key_neighbours


def row_top(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest positive entries of a sparse square matrix, symmetrised by
    max(W, Wᵀ), float32 — :func:`sparsify` for a matrix too large to hold dense (rows are made
    dense ``ROW_BLOCK`` at a time and ranked by ``torch.topk``)."""
    import torch

    n = matrix.shape[0]
    k = min(k, n - 1) if n > 1 else 0
    if k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    rows, cols, values = [], [], []
    for start in range(0, n, ROW_BLOCK):
        block = torch.from_numpy(matrix[start:start + ROW_BLOCK].toarray().astype(np.float32))
        top = block.topk(k, dim=1)
        keep = top.values > 0
        rows.append((torch.nonzero(keep)[:, 0] + start).numpy())
        cols.append(top.indices[keep].numpy())
        values.append(top.values[keep].numpy())
    w = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    w = w.maximum(w.T).tocsr()
    w.sort_indices()
    return w.astype(np.float32)


def key_neighbours(keys: np.ndarray, k: int, weight: float) -> sp.csr_matrix:
    """Symmetric edges from each key to its ``k`` nearest keys by cosine, all of ``weight``
    (similarities ``ROW_BLOCK`` rows at a time, ranked by ``torch.topk``)."""
    import torch

    n = keys.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    unit = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32)), dim=1)
    nearest = []
    for start in range(0, n, ROW_BLOCK):
        similarity = unit[start:start + ROW_BLOCK] @ unit.T
        rows = torch.arange(similarity.shape[0])
        similarity[rows, rows + start] = -float("inf")  # not its own neighbour
        nearest.append(similarity.topk(k, dim=1).indices)
    cols = torch.cat(nearest).numpy().ravel()
    edges = sp.csr_matrix((np.full(n * k, weight, dtype=np.float32), (np.repeat(np.arange(n), k), cols)),
                          shape=(n, n))
    return edges.maximum(edges.T).tocsr()


SOURCES = {"activations": activations_w, "mask": mask_w, "kv": kv_w}
