"""The ``spectral`` solver: recursive spectral bisection + KL, then block refinement."""

from __future__ import annotations

import time

import numpy as np

from icd_core import Constraints, FitResult, GraphW
from icd_core.toolkit import (
    Deadline,
    contract,
    expand,
    fit_stats,
    linear_arrangement,
    modularity,
    partition_modularity,
    pin_fixed,
    solver_workers,
    supernode_count,
)

from . import coarse
from .baselines import BASELINES
from .bisection import recursive_bisection
from .chunks import ChunkJob, bisect_chunks, chunk_count, chunk_spans
from .refine import block_swaps, polish_within_blocks
from .seeds import louvain_labels, seeded_layout, spectral_labels

LANCZOS_STEPS = 20


def use_multilevel(multilevel: str, count: int) -> bool:
    """``auto``: from :data:`coarse.MULTILEVEL_MIN` super-nodes, when pymetis is installed."""
    if multilevel == "off":
        return False
    if multilevel == "on":
        if not coarse.available():
            from icd_core import ConfigError

            raise ConfigError("solver spectral: multilevel on needs pymetis (pip install pymetis)")
        return count > 2
    return count >= coarse.MULTILEVEL_MIN and coarse.available()


def fit_spectral(w: GraphW, constraints: Constraints, deadline: Deadline, seed: int,
                 refine_steps: int = 10, seeds: str = "none", k_blocks: int | None = None,
                 multilevel: str = "auto") -> FitResult:
    """Recursive spectral bisection to g-blocks, KL on every split, block swaps, la polish.

    ``multilevel``: from :data:`coarse.MULTILEVEL_MIN` super-nodes (``auto``) METIS first cuts
    the graph into parts of about 8 g-blocks (:mod:`.coarse`), which spectral bisection then
    takes down to g-blocks; the layout is complete from the coarse level on, so a budget that
    runs out leaves a coarser layout (``timed_out``, ``levels``), never a truncated one.
    From 2 × :data:`chunks.CHUNK_NODES` super-nodes the parts are bisected in chunks on
    :func:`solver_workers` processes (:mod:`.chunks`; the same π whatever their number).
    ``seeds``: ``none``, ``louvain`` or ``spectral`` (k-means into ``k_blocks`` clusters,
    default n / 8g) — clusters laid out first, their order kept. Works on the super-node
    graph of ``constraints``; fixed super-nodes are pinned at the end.
    """
    t0 = time.perf_counter()
    size = constraints.supernode
    count = supernode_count(w.n, constraints, "solver 'spectral'")
    graph = contract(w.matrix, size)
    g_nodes = max(1, w.block // size)
    extra: dict[str, object] = {"seeds": seeds, "budget_s": deadline.budget_s}
    order, bounds = None, None
    method = "recursive-spectral-bisection"
    if seeds == "none" and graph.nnz and use_multilevel(multilevel, count):
        order, bounds, parts = coarse.coarse_layout(graph, g_nodes, seed)
        method = "multilevel: METIS coarse parts + recursive spectral bisection"
        extra.update(coarse_parts=parts, coarse_s=time.perf_counter() - t0)
    elif seeds != "none" and count > 2 and graph.nnz:
        labels = (louvain_labels(graph, seed) if seeds == "louvain"
                  else spectral_labels(graph, k_blocks or max(2, count // (8 * g_nodes)), seed))
        extra.update(clusters=int(labels.max()) + 1, Q_seeds=partition_modularity(graph, labels))
        order, bounds = seeded_layout(graph, labels, seed)
    chunks = chunk_count(count) if method.startswith("multilevel") else 1
    swaps = 0
    if chunks > 1:
        spans = chunk_spans(bounds, chunks)
        job = ChunkJob(graph=graph, order=order, g=g_nodes, steps=LANCZOS_STEPS, passes=refine_steps,
                       deadline=deadline, seed=seed)
        workers = solver_workers()
        bisected, order, timed_out, levels, swaps = bisect_chunks(job, spans, workers)
        extra.update(chunks=len(spans), workers=min(workers, len(spans)))
    elif count > 1 and graph.nnz:
        order, timed_out, levels = recursive_bisection(graph, g_nodes, steps=LANCZOS_STEPS, passes=refine_steps,
                                                       deadline=deadline, seed=seed, order=order, bounds=bounds)
        bisected = order
    else:
        order, timed_out, levels = np.arange(count), False, 0
        bisected = order
    if timed_out:
        extra["layout"] = (f"complete but coarse: the budget ran out after {levels} bisection levels, before every "
                           f"segment was split to {g_nodes}-node blocks")
    q_cluster = modularity(graph, bisected, g_nodes) if graph.nnz else 0.0
    if count > 1 and graph.nnz:
        order, more = block_swaps(graph, order, g_nodes, refine_steps, deadline)
        swaps += more
        order = keep_better_la(graph, order, polish_within_blocks(graph, order, g_nodes))
    order = pin_fixed(order, constraints.fixed)
    perm = expand(order, size)
    stats = fit_stats(w.matrix, perm, w.block, method=method,
                      time_s=time.perf_counter() - t0, timed_out=timed_out, supernode=size, levels=levels,
                      Q_cluster=q_cluster, swaps=swaps, **extra)
    stats["Q_final"] = stats["Q"]
    return FitResult(perm=perm, stats=stats)


def keep_better_la(w, order: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    return candidate if linear_arrangement(w, candidate) < linear_arrangement(w, order) else order


def fit_baseline(name: str, w: GraphW, constraints: Constraints, seed: int) -> FitResult:
    """One of :data:`BASELINES` on the super-node graph, constraints honoured."""
    t0 = time.perf_counter()
    size = constraints.supernode
    supernode_count(w.n, constraints, f"solver {name!r}")
    order = pin_fixed(BASELINES[name](contract(w.matrix, size), seed), constraints.fixed)
    perm = expand(order, size)
    return FitResult(perm=perm, stats=fit_stats(w.matrix, perm, w.block, method=name,
                                                time_s=time.perf_counter() - t0, supernode=size))
