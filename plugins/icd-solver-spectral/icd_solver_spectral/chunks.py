"""Both cores on one large problem: the coarse parts, in METIS's order, are dealt into a fixed
number of contiguous chunks (:func:`chunk_count`, from the node count only); each chunk's
spectral bisection and block swaps run in a forked worker on the chunk's own subgraph, with
the chunk's offset keeping g-blocks aligned to the whole order. Bisection never looks across
parts, so chunking changes nothing there; block swaps across chunk edges are left to the
global passes that follow (:mod:`.solve`). The chunks depend on n alone and every chunk is
solved with the same seed, so π is the same whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import attrs
import numpy as np
import scipy.sparse as sp

from icd_core.toolkit import Deadline

from .bisection import recursive_bisection
from .refine import block_swaps

CHUNK_NODES = 32_768  # super-nodes per chunk at least: smaller problems are one chunk (no fork)
MAX_CHUNKS = 16


def chunk_count(count: int) -> int:
    """A power of two, 1 below 2 × :data:`CHUNK_NODES` super-nodes, at most :data:`MAX_CHUNKS`."""
    chunks = 1
    while chunks < MAX_CHUNKS and count >= 2 * chunks * CHUNK_NODES:
        chunks *= 2
    return chunks


def chunk_spans(bounds: list[tuple[int, int]], chunks: int) -> list[list[tuple[int, int]]]:
    """``bounds`` (contiguous parts, in order) dealt into ``chunks`` runs of about equal size."""
    total = bounds[-1][1] - bounds[0][0]
    spans: list[list[tuple[int, int]]] = [[] for _ in range(chunks)]
    for start, end in bounds:
        middle = (start + end) / 2 - bounds[0][0]
        spans[min(chunks - 1, int(middle * chunks / total))].append((start, end))
    return [span for span in spans if span]


@attrs.frozen
class ChunkJob:
    """What every chunk shares (inherited by the forked workers, never pickled)."""

    graph: sp.csr_matrix
    order: np.ndarray
    g: int
    steps: int
    passes: int
    deadline: Deadline
    seed: int


@attrs.frozen
class ChunkResult:
    bisected: np.ndarray  # the chunk's nodes in their order after bisection
    nodes: np.ndarray  # ... and after block swaps
    timed_out: bool
    levels: int
    swaps: int


_JOB: list[ChunkJob] = []


def _solve_chunk(span: list[tuple[int, int]]) -> ChunkResult:
    job = _JOB[0]
    lo, hi = span[0][0], span[-1][1]
    nodes = job.order[lo:hi]
    sub = job.graph[nodes][:, nodes].tocsr()
    local = [(s - lo, e - lo) for s, e in span]
    order, timed_out, levels = recursive_bisection(sub, job.g, steps=job.steps, passes=job.passes,
                                                   deadline=job.deadline, seed=job.seed, bounds=local, offset=lo)
    swapped, swaps = block_swaps(sub, order, job.g, job.passes, job.deadline, offset=lo)
    return ChunkResult(bisected=nodes[order], nodes=nodes[swapped], timed_out=timed_out, levels=levels, swaps=swaps)


def _solve_chunk_alone(span: list[tuple[int, int]]) -> ChunkResult:
    """:func:`_solve_chunk` in a worker beside others: one BLAS thread each."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _solve_chunk(span)


def bisect_chunks(job: ChunkJob, spans: list[list[tuple[int, int]]],
                  workers: int) -> tuple[np.ndarray, np.ndarray, bool, int, int]:
    """(bisected, order, timed_out, levels, swaps): the order once every chunk is bisected,
    and once its nodes are also swapped between the chunk's blocks."""
    workers = max(1, min(workers, len(spans)))
    _JOB[:] = [job]
    try:
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            results = [_solve_chunk(span) for span in spans]
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(_solve_chunk_alone, spans))
    finally:
        _JOB.clear()
    bisected, order = job.order.copy(), job.order.copy()
    for span, result in zip(spans, results):
        bisected[span[0][0]:span[-1][1]] = result.bisected
        order[span[0][0]:span[-1][1]] = result.nodes
    return (bisected, order, any(r.timed_out for r in results), max(r.levels for r in results),
            sum(r.swaps for r in results))
