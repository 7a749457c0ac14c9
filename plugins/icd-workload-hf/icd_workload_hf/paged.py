"""Page-sparse attention over a paged KV cache, as a transformers attention function.

The cache of each (layer, KV head) is cut into pages of ``page`` consecutive tokens in its
*stored* order — the order a permutation of the token axis chose. Each page has a summary
(Quest's element-wise key min / max, the key centroid, or the centroid and a radius), kept
beside the cache like any paged cache's metadata. For each decoded token a selector scores
every page from its summary for all query heads of a KV head at once, and the ``budget`` pages
with the most estimated attention mass are read for all of them: gathered page by page from the
preallocated store (:mod:`.kvstore`) and attended to, with the decoded tokens themselves (the
recent window, causal). With a budget of every page this is exact attention (checked against
SDPA in the tests).

On a GPU the same plan is what a paged decode kernel consumes: FlashInfer's
``BatchDecodeWithPagedKVCacheWrapper.plan(indptr, indices, last_page_len, …, page_size)`` reads,
per request, the pages ``indices[indptr[b]:indptr[b + 1]]`` of a page table; one request per
(sequence, KV head) with that head's query heads, ``indices`` the selected ``ids`` over the
store's ``(Hkv · pages) × (page · d)`` view, is this kernel's plan. The torch code here runs on
CUDA tensors too; FlashInfer is not a dependency (not measured without a GPU).

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
    KV head and decoded token (None: every page), the selector of each (layer, KV head), and its pages always
    read (``pinned``: attention sinks; they count in the budget)."""

    page: int
    budget: int | None
    selectors: Mapping[tuple[int, int], str]
    pinned: Mapping[tuple[int, int], torch.Tensor] = attrs.Factory(dict)


@attrs.frozen(eq=False)
class Summaries:
    """Per page of a cache: key min, max, centroid (… × pages × d) and radius (… × pages)."""

    low: torch.Tensor
    high: torch.Tensor
    centroid: torch.Tensor
    radius: torch.Tensor

    @classmethod
    def of(cls, keys: torch.Tensor, page: int) -> Summaries:
        """``keys``: … × tokens × d (any leading dims, e.g. KV heads); a partial last page is
        summarised over its own tokens."""
        *lead, tokens, d = keys.shape
        pages = -(-tokens // page)
        pad = pages * page - tokens
        valid = torch.ones(pages * page, dtype=torch.bool, device=keys.device)
        valid[tokens:] = False
        padded = torch.cat([keys, keys[..., -1:, :].expand(*lead, pad, d)], dim=-2) if pad else keys
        grid = padded.reshape(*lead, pages, page, d)
        mask = valid.reshape(pages, page)
        count = mask.sum(1, keepdim=True).to(keys.dtype)
        centroid = (grid * mask[..., None]).sum(-2) / count
        radius = ((grid - centroid[..., None, :]).norm(dim=-1) * mask).amax(-1)
        return cls(grid.amin(-2), grid.amax(-2), centroid, radius)


def page_scores(query: torch.Tensor, summaries: Summaries, selector: str) -> torch.Tensor:
    """Scores of every page for every query: queries (… × M × d) against summaries
    (… × pages × d) give … × M × pages; higher is read first."""
    if selector == "quest":  # an upper bound of q·k over the page: Σ max(q·low, q·high) channel by channel
        return (query.clamp(min=0) @ summaries.high.transpose(-1, -2)).add_(  # = q⁺·high + q⁻·low (high ≥ low)
            query.clamp(max=0) @ summaries.low.transpose(-1, -2))
    score = query @ summaries.centroid.transpose(-1, -2)
    if selector == "radius":
        score = score + query.norm(dim=-1, keepdim=True) * summaries.radius.unsqueeze(-2)
    return score


def shared_selection(scores: torch.Tensor, scaling: float, pinned: torch.Tensor, budget: int) -> torch.Tensor:
    """The ``budget`` pages one KV head reads for all its queries at once: ``scores``
    (… × M × pages, M = its query heads × steps) become an estimated attention mass per page
    (softmax over pages, summed over the M queries); ``pinned`` pages (… × pages, bool) come
    first. Returns … × budget page indices."""
    mass = torch.softmax(scores * scaling, dim=-1).sum(-2)
    if pinned is not None:
        mass.masked_fill_(pinned, float("inf"))
    return mass.topk(budget, dim=-1).indices


def read_error(probs: torch.Tensor, values: torch.Tensor, scores: torch.Tensor, page: int,
               pinned: torch.Tensor | list[int], scaling: float, budget: int | None = None) -> float:
    """Mean relative error of the attention output when a KV head reads ``budget`` pages
    (default 1/8 of them) for each token's query heads together, as :func:`paged_attention`
    does (``pinned`` pages first, then by estimated mass): how well a selector and order serve
    a head. ``probs``: G × T × tokens (query head, token); ``scores``: G × T × pages;
    ``values``: tokens × d."""
    groups, steps, tokens = probs.shape
    pages = scores.shape[-1]
    mask = torch.zeros(steps, pages, dtype=torch.bool)
    mask[:, pinned] = True
    chosen = min(pages, budget) if budget is not None else max(1, pages // 8)
    ids = shared_selection(scores.transpose(0, 1), scaling, mask, chosen)  # T × budget
    read = torch.zeros(steps, pages, dtype=torch.bool).scatter_(1, ids, True)
    kept = probs * read.repeat_interleave(page, dim=1)[None, :, :tokens]
    approx = (kept / kept.sum(-1, keepdim=True)) @ values
    exact = probs @ values
    return float(((approx - exact).norm(dim=-1) / exact.norm(dim=-1).clamp(min=1e-12)).mean())


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
    ``capture`` or ``paged``), the plan, page summaries and store of the current cache,
    captured queries, and the time spent in attention during the last forward."""

    mode: str = "exact"
    plan: PagePlan | None = None
    layers: dict[int, LayerPages] = attrs.Factory(dict)
    store: Any = None  # the KVStore being decoded against (paged attention gathers its pages)
    cached: int = 0
    captured: dict[int, list[torch.Tensor]] = attrs.Factory(dict)
    capture_last: int = 0
    attention_ms: float = 0.0
    pages_read: list[int] = attrs.Factory(list)  # per paged layer-step: pages each KV head read
    exact_steps: int = 0  # paged layer-steps whose budget covered every page (run exact)
    path: str = "auto"  # auto | gather (tests force the gathering kernel even over every page)

    def begin(self) -> None:
        self.attention_ms = 0.0
        self.pages_read = []
        self.exact_steps = 0


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
    scores = torch.bmm(q, key[0].transpose(1, 2)).mul_(scaling)
    if steps > 1:  # a single decoding query sees everything
        device = query.device
        visible = torch.cat([torch.ones(steps, cached, dtype=torch.bool, device=device),
                             _causal(steps, key.shape[2] - cached, device)], dim=1)
        scores.masked_fill_(~visible.repeat(heads // kv_heads, 1), float("-inf"))  # the same per query head
    out = torch.bmm(torch.softmax(scores, dim=-1), value[0])  # Hkv × (G·L) × d
    return out.reshape(heads, steps, d).transpose(0, 1).unsqueeze(0)


@attrs.frozen(eq=False)
class LayerPages:
    """One layer's page summaries stacked over its KV heads, with each head's selector and
    pinned pages — what :func:`paged_attention` reads per step. Quest's bounds are kept as one
    ``[high, low]`` tensor so that a head's bound is one product: ``[q⁺, q⁻] · [high, low]``."""

    summaries: Summaries  # Hkv × pages × d (radius: Hkv × pages)
    selectors: tuple[str, ...]
    pinned: torch.Tensor | None  # Hkv × pages, bool (None: no page pinned)
    bounds: torch.Tensor | None  # Hkv × 2d × pages when a head uses quest
    row_offsets: torch.Tensor  # Hkv × 1: the first page row of each KV head in the store's page view

    @classmethod
    def of(cls, summaries: Summaries, selectors: list[str], pinned: list[torch.Tensor | None],
           pages_per_head: int | None = None) -> LayerPages:
        heads, pages = summaries.centroid.shape[0], summaries.centroid.shape[-2]
        device = summaries.centroid.device
        mask = torch.zeros(heads, pages, dtype=torch.bool, device=device)
        for head, chosen in enumerate(pinned):
            if chosen is not None and len(chosen):
                mask[head, chosen] = True
        bounds = (torch.cat([summaries.high, summaries.low], dim=-1).transpose(-1, -2).contiguous()
                  if "quest" in selectors else None)
        offsets = torch.arange(heads, device=device)[:, None] * (pages_per_head or pages)
        return cls(summaries, tuple(selectors), mask if bool(mask.any()) else None, bounds, offsets)

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """Page scores of queries ``q`` (Hkv × M × d, M = query heads × steps) by each head's
        own selector: Hkv × M × pages."""
        def one(name: str) -> torch.Tensor:
            if name == "quest":
                return torch.cat([q.clamp(min=0), q.clamp(max=0)], dim=-1) @ self.bounds
            return page_scores(q, self.summaries, name)

        per_selector = {name: one(name) for name in set(self.selectors)}
        if len(per_selector) == 1:
            return next(iter(per_selector.values()))
        return torch.stack([per_selector[name][h] for h, name in enumerate(self.selectors)])


def paged_attention(layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
                    runtime: AttentionRuntime) -> torch.Tensor:
    """Attention of a few decoding queries over the selected pages of the cache plus the
    tokens decoded since (causal: the recent window, always read), every KV head at once.

    ``query``: 1 × Hq × L × d; ``key`` / ``value``: 1 × Hkv × (cached + new) × d, views of
    ``runtime.store`` with the cache first. Per KV head one selection serves all its query
    heads and steps (:func:`shared_selection`: the budget is what leaves memory); the chosen
    pages of every head come out of the store in one page-granular ``index_select`` for keys
    and one for values, then two batched products. A budget that covers every page runs exact
    grouped attention (the same result, no gather). Returns 1 × L × Hq × d.
    """
    plan, pages_of, store = runtime.plan, runtime.layers[layer], runtime.store
    cached, page = runtime.cached, plan.page
    _, heads, steps, d = query.shape
    kv_heads = key.shape[1]
    pages = pages_of.summaries.centroid.shape[-2]
    budget = pages if plan.budget is None else min(plan.budget, pages)
    if budget == pages and runtime.path != "gather":
        runtime.exact_steps += 1
        runtime.pages_read.append(pages)
        return grouped_attention(query, key, value, scaling, cached)
    q = query[0].reshape(kv_heads, -1, d)  # Hkv × (G·L) × d: rows are (query head, step)
    ids = shared_selection(pages_of.scores(q), scaling, pages_of.pinned, budget)  # Hkv × B
    runtime.pages_read.append(budget)
    device = query.device
    rows = ids.add(pages_of.row_offsets).flatten()
    key_pages, value_pages = store.pages(layer)
    k_sel = key_pages.index_select(0, rows).view(kv_heads, budget * page, d)
    v_sel = value_pages.index_select(0, rows).view(kv_heads, budget * page, d)
    s_cache = torch.bmm(q, k_sel.transpose(1, 2)).mul_(scaling)
    if cached % page:  # the last page is partial: its tail holds decoded tokens (attended below)
        tail = (ids * page).unsqueeze(-1) + torch.arange(page, device=device) >= cached
        s_cache.masked_fill_(tail.reshape(kv_heads, 1, -1), float("-inf"))
    k_new, v_new = key[0, :, cached:], value[0, :, cached:]
    s_new = torch.bmm(q, k_new.transpose(1, 2)).mul_(scaling)
    if steps > 1:
        causal = _causal(steps, k_new.shape[1], device).repeat(heads // kv_heads, 1)
        s_new.masked_fill_(~causal, float("-inf"))
    weights = torch.softmax(torch.cat([s_cache, s_new], dim=-1), dim=-1)
    n = s_cache.shape[-1]
    out = torch.bmm(weights[..., :n], v_sel).add_(torch.bmm(weights[..., n:], v_new))
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
