"""The ``kv-pages`` measure: what a paged decode of a state reads from its KV cache.

Pages read per query count, for each (layer, KV head) and decoded token, the pages any of the
KV head's query heads selected (the pages that leave memory); bytes per token add keys and
values of those pages over every layer and head. Exact attention reads every page. Both are
computed from the decode itself (``computed:paged-decode``), deterministic for a state.
"""

from __future__ import annotations

from icd_core import KV_TOKENS, Figure

SOURCE = "computed:paged-decode"


def page_figures(state) -> dict[str, Figure]:
    workload = state.workload
    if not hasattr(workload, "page_plan") or not any(g.kind == KV_TOKENS for g in state.groups):
        reason = f"workload {workload.name!r} has no paged KV cache"
        return {"kv_pages_per_query": Figure.missing(reason, "pages")}
    cached = workload.cached_tokens(state)
    plan = workload.page_plan(state)
    page = plan.page if plan is not None else 16
    total = -(-cached // page)
    d = state.tensors["cache.0.0.key"].shape[-1]
    element = state.tensors["cache.0.0.key"].element_size()
    if workload.backend != "paged" or plan is None:
        pages, how = float(total), "exact attention reads every page"
    else:
        workload.decode(state)
        pages, how = workload.pages_read(), f"paged decode, budget {plan.budget or 'every page'}"
    per_token = pages * page * d * element * 2 * workload.layers * workload.kv_heads
    detail = {"page": page, "pages_in_cache": total, "cached_tokens": cached, "how": how}
    return {"kv_pages_per_query": Figure(pages, SOURCE, unit="pages", detail=detail),
            "kv_bytes_per_token": Figure(per_token, SOURCE, unit="B", detail={"page": page})}
