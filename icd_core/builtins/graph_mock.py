"""Built-in graph source ``mock``: planted co-access blocks behind a hidden relabelling.

Each dimension spends a budget of ``max(1, min(⌊0.025·n⌋, 32))`` picks: a ``noise``
fraction on random dimensions, the rest on members of its own planted block, so the
symmetric W has nnz ≤ max(0.05·n², 2n) and at most 64 per row. A seeded random relabelling hides the blocks, so the identity
order is far from optimal. Accesses: each sampled row's neighbourhood (the dims one gather of
that row touches); held-out accesses are drawn afresh from the planted process (another seed),
so measures do not replay what W was built from.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import GraphW
from icd_core.layout.graphs import symmetric_csr
from icd_core.layout.permutations import inverse

NAME = "mock"
ACCESS_SAMPLES = 256
MAX_PICKS = 32


def planted_blocks(n: int, blocks: int, noise: float, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """(W in label order, planted block of each label). Deterministic per arguments."""
    rng = np.random.default_rng(seed)
    blocks = max(1, min(blocks, n))
    sizes = np.full(blocks, n // blocks)
    sizes[: n % blocks] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    block_of = np.repeat(np.arange(blocks), sizes)
    picks = max(1, min(int(0.025 * n), MAX_PICKS))
    src = np.repeat(np.arange(n), picks)
    is_noise = rng.random(src.size) < noise
    b = block_of[src]
    dst = np.where(is_noise, rng.integers(0, n, src.size),
                   starts[b] + (rng.random(src.size) * sizes[b]).astype(np.int64))
    weight = np.where(is_noise, 0.5 * rng.random(src.size), 1.0 + 0.1 * rng.random(src.size))
    label = rng.permutation(n)  # planted position k is shown as label[k]
    w = symmetric_csr(label[src], label[dst], weight, n)
    planted = np.empty(n, dtype=np.int64)
    planted[label] = block_of
    return w, planted


def neighbourhood_accesses(w: sp.csr_matrix, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    rows = rng.choice(w.shape[0], size=min(samples, w.shape[0]), replace=False)
    return tuple(np.union1d([r], w.indices[w.indptr[r]:w.indptr[r + 1]]).astype(np.int64) for r in np.sort(rows))


def planted_accesses(planted: np.ndarray, noise: float, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Fresh accesses from the planted process (labels): a dimension and its picks, each pick
    a random dimension with probability ``noise``, else a member of its own planted block."""
    n = planted.size
    picks = max(1, min(int(0.025 * n), MAX_PICKS))
    members = [np.flatnonzero(planted == b) for b in range(int(planted.max()) + 1)]
    out = []
    for r in np.sort(rng.choice(n, size=min(samples, n), replace=False)):
        own = members[planted[r]]
        chosen = np.where(rng.random(picks) < noise, rng.integers(0, n, picks), own[rng.integers(0, own.size, picks)])
        out.append(np.union1d([r], chosen).astype(np.int64))
    return tuple(out)


def mock_w(n: int, blocks: int, noise: float, seed: int, layout: np.ndarray) -> GraphW:
    """The planted W seen in ``layout`` (``W_cur[i, j] = W[layout[i], layout[j]]``), the
    accesses it was built from and held-out accesses drawn afresh from the planted process."""
    base, planted = planted_blocks(n, blocks, noise, seed)
    layout = np.asarray(layout, dtype=np.int64)
    current = base[layout][:, layout].tocsr()
    current.sort_indices()
    accesses = neighbourhood_accesses(current, ACCESS_SAMPLES, np.random.default_rng(seed + 1))
    position = inverse(layout)
    heldout = tuple(np.sort(position[a]) for a in planted_accesses(planted, noise, ACCESS_SAMPLES,
                                                                    np.random.default_rng(seed + 2)))
    meta = {"source": NAME, "seed": seed, "blocks": blocks, "noise": noise,
            "shape": list(current.shape), "format": "csr", "nnz": int(current.nnz)}
    return GraphW(matrix=current.astype(np.float32), meta=meta, access_groups=accesses, heldout=heldout)


def mock_for(ctx, state, group) -> GraphW:
    """Mock W for one group; each group draws from its own seed derived from (seed, group)."""
    cfg = ctx.config.graph.mock
    base = ctx.seed if cfg.seed is None else cfg.seed
    seed = int(np.random.default_rng([base, *group.name.encode()]).integers(2**31))
    return mock_w(group.size, cfg.blocks, cfg.noise, seed, np.asarray(state.layout[group.name]))


@hookimpl
def icd_register(registry):
    registry.add("graph", NAME, summary="planted co-access blocks with a hidden relabelling (graph.mock)")


@hookimpl
def icd_build_w(ctx, source, state, group):
    return mock_for(ctx, state, group)
