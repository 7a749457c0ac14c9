"""Page-sparse attention over a paged KV cache, as a transformers attention function.

The cache of each (layer, KV head) is cut into pages of ``page`` consecutive tokens in its
*stored* order — the order a permutation of the token axis chose. Each page has a summary
(Quest's element-wise key min / max, the key centroid, or the centroid and a radius), kept
beside the cache like any paged cache's metadata. For each decoding query a selector scores
every page from its summary and only the ``budget`` best pages are read: their keys and values
are gathered and attended to, with the decoding tokens themselves (causal). With a budget of
every page this is exact attention (checked against SDPA in the tests).

Selectors suit layouts: min / max bounds suit the natural order (neighbouring tokens have
similar keys per channel); centroids suit pages laid out by key similarity and co-selection.
The time spent in attention is accumulated per forward (``AttentionRuntime.attention_ms``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs
import torch

SELECTORS = ("quest", "centroid", "radius")
RUNTIME_ATTRIBUTE = "icd_runtime"
DECODE_STEPS = 64
"""At most this many queries at once against a cache count as decoding (grouped or paged)."""


@attrs.frozen
class PagePlan:
    """How a state's cache is read: ``page`` tokens per page, at most ``budget`` pages per
    query head (None: every page), the selector of each (layer, KV head), and its pages always
    read (``pinned``: attention sinks; they count in the budget)."""

    page: int
    budget: int | None
    selectors: Mapping[tuple[int, int], str]
    pinned: Mapping[tuple[int, int], torch.Tensor] = attrs.Factory(dict)


@attrs.frozen(eq=False)
class Summaries:
    """Per page of one (layer, KV head) cache: key min, max, centroid and radius."""

    low: torch.Tensor
    high: torch.Tensor
    centroid: torch.Tensor
    radius: torch.Tensor

    @classmethod
    def of(cls, keys: torch.Tensor, page: int) -> Summaries:
        """``keys``: tokens × d; a partial last page is summarised over its own tokens."""
        tokens, d = keys.shape
        pages = -(-tokens // page)
        pad = pages * page - tokens
        mask = torch.ones(pages * page, dtype=torch.bool, device=keys.device)
        if pad:
            mask[tokens:] = False
        padded = torch.cat([keys, keys[-1:].expand(pad, d)]) if pad else keys
        grid = padded.reshape(pages, page, d)
        count = mask.reshape(pages, page).sum(1, keepdim=True).to(keys.dtype)
        centroid = (grid * mask.reshape(pages, page, 1)).sum(1) / count
        radius = ((grid - centroid[:, None]).norm(dim=2) * mask.reshape(pages, page)).amax(1)
        return cls(grid.amin(1), grid.amax(1), centroid, radius)


def page_scores(query: torch.Tensor, summaries: Summaries, selector: str) -> torch.Tensor:
    """Scores of every page for every query: queries (… × M × d) against summaries
    (… × pages × d) give … × M × pages; higher is read first."""
    if selector == "quest":  # an upper bound of q·k over the page, channel by channel
        q = query.unsqueeze(-2)  # … × M × 1 × d against … × 1 × pages × d
        return torch.maximum(q * summaries.low.unsqueeze(-3), q * summaries.high.unsqueeze(-3)).sum(-1)
    score = query @ summaries.centroid.transpose(-1, -2)
    if selector == "radius":
        score = score + query.norm(dim=-1, keepdim=True) * summaries.radius.unsqueeze(-2)
    return score


def read_error(probs: torch.Tensor, values: torch.Tensor, scores: torch.Tensor, page: int,
               pinned: torch.Tensor) -> float:
    """Mean relative error of the attention output when each query reads 1/8 of the pages
    (``pinned`` ones first, then by ``scores``): how well a selector and order serve a head."""
    tokens = probs.shape[1]
    pages = scores.shape[1]
    scores = scores.clone()
    scores[:, pinned] = float("inf")
    read = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.topk(max(1, pages // 8), dim=1).indices, True)
    kept = probs * read.repeat_interleave(page, dim=1)[:, :tokens]
    approx = (kept / kept.sum(1, keepdim=True)) @ values
    exact = probs @ values
    return float(((approx - exact).norm(dim=1) / exact.norm(dim=1).clamp(min=1e-12)).mean())


def pages_for_mass(probs: torch.Tensor, scores: torch.Tensor, page: int, mass: float) -> float:
    """Mean pages each query reads, in its selector's order, until the pages hold ``mass`` of
    its attention (``probs``: queries × tokens in stored order; ``scores``: queries × pages)."""
    tokens = probs.shape[1]
    pages = scores.shape[1]
    padded = torch.nn.functional.pad(probs, (0, pages * page - tokens))
    per_page = padded.reshape(probs.shape[0], pages, page).sum(-1)
    ordered = per_page.gather(1, scores.argsort(dim=1, descending=True))
    return float(((ordered.cumsum(1) < mass).sum(1) + 1).clamp(max=pages).float().mean())


@attrs.define(eq=False)
class AttentionRuntime:
    """Shared by every attention module of a model: how attention runs now (``exact``,
    ``capture`` or ``paged``), the plan and summaries of the current cache, captured
    queries, and the time spent in attention during the last forward."""

    mode: str = "exact"
    plan: PagePlan | None = None
    layers: dict[int, LayerPages] = attrs.Factory(dict)
    cached: int = 0
    captured: dict[int, list[torch.Tensor]] = attrs.Factory(dict)
    capture_last: int = 0
    attention_ms: float = 0.0
    pages_read: list[torch.Tensor] = attrs.Factory(list)
    masked: int = 0
    path: str = "auto"  # auto | gather | masked (tests force one)

    def begin(self) -> None:
        self.attention_ms = 0.0
        self.pages_read = []
        self.masked = 0


def attend(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
           attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **kwargs: Any):
    """The attention function registered as ``icd`` (see :func:`install`)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    runtime: AttentionRuntime | None = getattr(module, RUNTIME_ATTRIBUTE, None)
    t0 = time.perf_counter()
    if runtime is not None and runtime.mode == "capture":
        runtime.captured.setdefault(module.layer_idx, []).append(query[0, :, -runtime.capture_last:].detach().clone())
    decoding = runtime is not None and runtime.cached > 0 and query.shape[0] == 1 and query.shape[2] <= DECODE_STEPS
    if decoding and runtime.mode == "paged" and runtime.plan is not None:
        out = paged_attention(module.layer_idx, query, key, value, scaling, runtime), None
    elif decoding:
        out = grouped_attention(query, key, value, scaling, runtime.cached), None
    else:
        out = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                     **kwargs)
    if runtime is not None:
        runtime.attention_ms += (time.perf_counter() - t0) * 1e3
    return out


def _causal(query_len: int, new: int, device: Any = None) -> torch.Tensor:
    """Which of the ``new`` tokens after the cache each of the last ``query_len`` queries sees."""
    return torch.arange(new, device=device)[None, :] <= (new - query_len + torch.arange(query_len, device=device))[:, None]


def grouped_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
                      cached: int) -> torch.Tensor:
    """Exact attention of a few decoding queries over the whole cache: one batched matmul for
    every KV head and its query heads (no copies of K / V per query head). Returns
    1 × L × Hq × d."""
    _, heads, steps, d = query.shape
    kv_heads = key.shape[1]
    q = query[0].reshape(kv_heads, -1, d)  # Hkv × (G·L) × d: rows are (query head, step)
    device = query.device
    visible = torch.cat([torch.ones(steps, cached, dtype=torch.bool, device=device),
                         _causal(steps, key.shape[2] - cached, device)], dim=1)
    visible = visible.repeat(heads // kv_heads, 1)  # the same per query head
    scores = torch.bmm(q, key[0].transpose(1, 2)).mul_(scaling).masked_fill_(~visible, float("-inf"))
    out = torch.bmm(torch.softmax(scores, dim=-1), value[0])  # Hkv × (G·L) × d
    return out.reshape(heads, steps, d).transpose(0, 1).unsqueeze(0)


@attrs.frozen(eq=False)
class LayerPages:
    """One layer's page summaries stacked over its KV heads, with each head's selector and
    pinned pages — what :func:`paged_attention` reads per step."""

    summaries: Summaries  # Hkv × pages × d (radius: Hkv × pages)
    selectors: tuple[str, ...]
    pinned: torch.Tensor  # Hkv × pages, bool

    @classmethod
    def of(cls, per_head: list[Summaries], selectors: list[str], pinned: list[torch.Tensor | None]) -> LayerPages:
        stacked = Summaries(*(torch.stack([getattr(s, f) for s in per_head]) for f in ("low", "high", "centroid",
                                                                                          "radius")))
        mask = torch.zeros(len(per_head), stacked.centroid.shape[1], dtype=torch.bool, device=stacked.centroid.device)
        for head, pages in enumerate(pinned):
            if pages is not None and len(pages):
                mask[head, pages] = True
        return cls(stacked, tuple(selectors), mask)

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """Page scores of queries ``q`` (Hkv × M × d, M = query heads × steps) by each head's
        own selector: Hkv × M × pages."""
        per_selector = {name: page_scores(q, self.summaries, name) for name in set(self.selectors)}
        if len(per_selector) == 1:
            return next(iter(per_selector.values()))
        return torch.stack([per_selector[name][h] for h, name in enumerate(self.selectors)])


def paged_attention(layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
                    runtime: AttentionRuntime) -> torch.Tensor:
    """Attention of a few decoding queries over the selected pages of the cache plus the
    tokens decoded since (causal), every KV head of the layer at once.

    ``query``: 1 × Hq × L × d; ``key`` / ``value``: 1 × Hkv × (cached + new) × d, the cache
    first. Per KV head, the union of the pages its query heads select is gathered once (the
    bytes that leave memory); each query head attends to its own pages within it. Returns
    1 × L × Hq × d (the layout transformers expects from attention).
    """
    plan, pages_of = runtime.plan, runtime.layers[layer]
    cached = runtime.cached
    _, heads, steps, d = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    q = query[0].reshape(kv_heads, group * steps, d)  # rows are (query head, step)
    k_cache, v_cache = key[0, :, :cached], value[0, :, :cached]
    k_new, v_new = key[0, :, cached:], value[0, :, cached:]
    pages = pages_of.pinned.shape[1]
    budget = pages if plan.budget is None else min(plan.budget, pages)
    scores = pages_of.scores(q).masked_fill_(pages_of.pinned[:, None, :], float("inf"))
    device = query.device
    read = torch.zeros(kv_heads, group * steps, pages, dtype=torch.bool, device=device)
    read.scatter_(-1, scores.topk(budget, dim=-1).indices, True)
    union = read.reshape(kv_heads, group, steps, pages).any(1)  # Hkv × L × pages: read once per KV head
    counts = union.sum(-1)
    runtime.pages_read.append(counts.flatten())
    causal = _causal(steps, key.shape[2] - cached, device).repeat(group, 1)
    s_new = torch.bmm(q, k_new.transpose(1, 2)).mul_(scaling).masked_fill_(~causal, float("-inf"))
    gather = int(counts.max()) * plan.page < cached if runtime.path == "auto" else runtime.path == "gather"
    if gather:  # gather the pages: work and bytes follow the pages read
        ids = union.float().topk(int(counts.max()), dim=-1).indices  # Hkv × L × U (the union, padded)
        tokens = (ids.unsqueeze(-1) * plan.page + torch.arange(plan.page, device=device)).flatten(-2)  # Hkv×L×U·P
        own = read.reshape(kv_heads, group, steps, pages).gather(
            -1, ids.unsqueeze(1).expand(-1, group, -1, -1)).repeat_interleave(plan.page, dim=-1)
        valid = (own & (tokens < cached).unsqueeze(1)).reshape(kv_heads, group * steps, -1)
        tokens = tokens.clamp(max=cached - 1)
        head = torch.arange(kv_heads, device=device)[:, None, None]
        k_sel, v_sel = k_cache[head, tokens], v_cache[head, tokens]  # Hkv × L × U·P × d
        qs = q.reshape(kv_heads, group, steps, d)
        s_cache = torch.einsum("hgld,hlnd->hgln", qs, k_sel).reshape(kv_heads, group * steps, -1)
        s_cache = s_cache.mul_(scaling).masked_fill_(~valid, float("-inf"))
        weights = torch.softmax(torch.cat([s_cache, s_new], dim=-1), dim=-1)
        n = s_cache.shape[-1]
        cache_part = torch.einsum("hgln,hlnd->hgld", weights[..., :n].reshape(kv_heads, group, steps, n), v_sel)
        out = cache_part.reshape(kv_heads, group * steps, d) + torch.bmm(weights[..., n:], v_new)
    else:  # nearly every page: one masked pass over the cache costs less, same result
        runtime.masked += 1
        mask = read.repeat_interleave(plan.page, dim=-1)[..., :cached]
        s_cache = torch.bmm(q, k_cache.transpose(1, 2)).mul_(scaling).masked_fill_(~mask, float("-inf"))
        weights = torch.softmax(torch.cat([s_cache, s_new], dim=-1), dim=-1)
        out = torch.bmm(weights[..., :cached], v_cache) + torch.bmm(weights[..., cached:], v_new)
    return out.reshape(heads, steps, d).transpose(0, 1).unsqueeze(0)  # 1 × L × Hq × d


def install(model: Any, runtime: AttentionRuntime) -> None:
    """Route the model's attention through :func:`attend`, sharing ``runtime``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("icd", attend)
    AttentionMaskInterface.register("icd", sdpa_mask)  # the exact path is SDPA: give it SDPA's masks
    model.config._attn_implementation = "icd"
    for module in model.modules():
        if hasattr(module, "layer_idx") and hasattr(module, "o_proj"):
            setattr(module, RUNTIME_ATTRIBUTE, runtime)
