"""Block-wise KV-cache eviction on groups of kind ``kv_tokens`` (the cache's token axis).

A block's importance is the mean L2 norm of its key rows (the group's first member is the
key cache) or, with ``score=attention``, the attention mass decoding puts on its tokens
(from the workload's ``attention_mass(state, group)``). The least important unprotected blocks are dropped from every member
(keys, values) so attention no longer sees them; the group shrinks accordingly.
"""

from __future__ import annotations

import numpy as np

from icd_core import ReportsAttentionMass, TransformMeta, TransformResult
from icd_core.toolkit import tensors as T


def blocks_to_keep(key_norms: np.ndarray, block: int, drop: float, sinks: int, recent: int) -> np.ndarray:
    """Indices of kept blocks (ascending). Ties are broken towards keeping later blocks."""
    count = -(-len(key_norms) // block)
    scores = np.array([key_norms[i * block:(i + 1) * block].mean() for i in range(count)])
    protected = set(range(min(sinks, count))) | set(range(max(count - recent, 0), count))
    candidates = [i for i in range(count) if i not in protected]
    n_drop = int(np.floor(drop * len(candidates)))
    ranked = sorted(candidates, key=lambda i: (scores[i], -i))
    dropped = set(ranked[:n_drop])
    return np.array([i for i in range(count) if i not in dropped], dtype=np.int64)


def apply_eviction(state, options, spec: str, kind: str) -> TransformResult:
    groups = [g for g in state.groups if g.kind == kind]
    if not groups:
        reason = f"workload {state.workload.name!r} has no KV-cache group (kind {kind!r})"
        return TransformResult(state=state, meta=TransformMeta.skipped("kv", spec, reason))
    new_state = state
    stats = {}
    attention = state.workload.attention_mass if isinstance(state.workload, ReportsAttentionMass) else None
    if options.score == "attention" and attention is None:
        reason = f"workload {state.workload.name!r} cannot report attention mass (use score=key_norm)"
        return TransformResult(state=state, meta=TransformMeta.skipped("kv", spec, reason))
    for group in groups:
        if options.score == "attention":
            importance = np.asarray(attention(state, group.name), dtype=np.float64)
        else:
            keys = T.to_numpy(state.tensors[group.members[0].tensor])
            axis = group.members[0].axis
            importance = np.linalg.norm(np.moveaxis(keys, axis, 0).reshape(group.size, -1).astype(np.float64), axis=1)
        kept_blocks = blocks_to_keep(importance, options.block, options.drop, options.sinks, options.recent)
        keep = np.concatenate([np.arange(b * options.block, min((b + 1) * options.block, group.size))
                               for b in kept_blocks])
        new_state = new_state.selected(group.name, keep)
        stats[group.name] = {"tokens_before": group.size, "tokens_after": int(len(keep)),
                             "blocks_dropped": int(-(-group.size // options.block) - len(kept_blocks))}
    meta = TransformMeta(adapter="kv", spec=spec,
                         details={"kv": {"mode": "evict", "block": options.block, "drop": options.drop,
                                         "score": options.score}},
                         repermute=True, w_source="kv",
                         repermute_reason="evicted tokens closed up the cache and split its pages: π₁ re-packs them",
                         stats=stats)
    return TransformResult(state=new_state.with_transform({}, meta), meta=meta)
