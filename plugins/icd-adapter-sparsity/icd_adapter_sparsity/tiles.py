"""The ``tiles`` measure: what a block-sparse (BSR) kernel would touch.

For every weight that reads a permutation group as its input dim, the number of b×b tiles
holding any non-zero (b = 32 and 64) and the share of non-zero weights. Deterministic:
computed from the tensors, labelled ``computed:tiles``.
"""

from __future__ import annotations

import numpy as np

from icd_core import Figure
from icd_core.toolkit import tensors as T

from .nm import nonzero_tiles

SOURCE = "computed:tiles"


def tile_figures(state) -> dict[str, Figure]:
    counts = {32: 0, 64: 0}
    nonzero = total = 0
    seen = set()
    for group in state.groups:
        for member in group.members:
            if member.role != "in" or member.tensor in seen:
                continue
            seen.add(member.tensor)
            w = np.moveaxis(T.to_numpy(state.tensors[member.tensor]), member.axis, -1)
            w2d = w.reshape(-1, w.shape[-1])
            for b in counts:
                counts[b] += nonzero_tiles(w2d, b)
            nonzero += int(np.count_nonzero(w2d))
            total += w2d.size
    if not seen:
        reason = "no weight reads a permutation group as its input dim"
        return {"tiles32": Figure.missing(reason), "tiles64": Figure.missing(reason)}
    detail = {"tensors": len(seen)}
    figures = {"tiles32": Figure(float(counts[32]), SOURCE, unit="tiles", detail=detail),
               "tiles64": Figure(float(counts[64]), SOURCE, unit="tiles", detail=detail),
               "weight_density": Figure(nonzero / total, SOURCE, unit="", detail=detail)}
    figures.update(pruned_tiles(state))
    return figures


def pruned_tiles(state) -> dict[str, Figure]:
    """``bsr_tiles``: non-zero tiles of the weights a sparsity transform pruned, at the tile
    size a BSR kernel runs them with (the pruning's own, else 32) — what it reads."""
    tiles = dense_tiles = 0
    sizes = set()
    for meta in state.applied:
        if not meta.details.get("sparsity") or meta.noop:
            continue
        b = int(meta.details["sparsity"].get("block") or 32)
        sizes.add(b)
        for name in meta.stats.get("tensors", []):
            w = T.to_numpy(state.tensors[name])
            w2d = w.reshape(-1, w.shape[-1])
            tiles += nonzero_tiles(w2d, b)
            dense_tiles += -(-w2d.shape[0] // b) * -(-w2d.shape[1] // b)
    if not sizes:
        return {}
    return {"bsr_tiles": Figure(float(tiles), SOURCE, unit="tiles",
                                detail={"tile": sorted(sizes), "of": dense_tiles, "share": tiles / dense_tiles})}
