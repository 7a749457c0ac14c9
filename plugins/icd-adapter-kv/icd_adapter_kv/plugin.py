"""Entry point of ``icd-adapter-kv``: ``kv:128:0.1`` (drop 10 % of 128-token blocks),
``kv:quant:2`` (2-bit K/V cache, channel groups sharing ranges) and ``kv:pages:16:auto`` (read
the cache in 16-token pages, the fewest per query that keep quality)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from icd_core import AUTO, KV_TOKENS, ConfigError, Knob, PlansPages, TransformMeta, TransformResult, hookimpl
from icd_core.toolkit import between, non_negative, positive

NAME = "kv"


def _budget(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None or value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"budget must be a page count >= 1, auto or none (got {value!r})")


@attrs.frozen
class KvOptions:
    """``evict``: drop ``drop`` of the ``block``-token blocks with the least importance
    (``score``: key norm or the attention mass decoding puts on them), never the first
    ``sinks`` blocks nor the last ``recent`` ones. ``quant``: ``bits``-bit asymmetric K/V;
    ``scheme grouped``: per token, runs of ``group`` channels share a scale, channels first
    re-ordered so runs share ranges (``reorder kmeans``, SKVQ-style); ``kivi``: per-channel
    keys and per-token values (KIVI, the no-permutation reference). ``pages``: read the cache
    in pages of ``page`` tokens, each KV head at most ``budget`` pages per decoded token, one
    selection shared by its query heads (``auto``:
    the fewest whose quality drop stays within the limit; ``none``: every page), chosen by a
    page ``selector`` (``auto``: per head the one, and the order, with the least attention
    error on the calibration queries; ``quest`` min/max bounds; ``centroid``; ``radius``); the
    pages of each head's attention sinks are always read."""

    mode: Literal["evict", "quant", "pages"] = "evict"
    block: int = attrs.field(default=128, validator=positive())
    drop: float = attrs.field(default=0.1, validator=between(0.0, 0.99))
    sinks: int = attrs.field(default=1, validator=non_negative())
    recent: int = attrs.field(default=1, validator=non_negative())
    score: Literal["key_norm", "attention"] = "key_norm"
    bits: int = 2
    group: int = attrs.field(default=32, validator=positive())
    scheme: Literal["grouped", "kivi"] = "grouped"
    reorder: Literal["kmeans", "none"] = "kmeans"
    page: int = attrs.field(default=16, validator=positive())
    budget: Any = attrs.field(default=AUTO, validator=_budget)
    selector: Literal["auto", "quest", "centroid", "radius"] = "auto"

    def __attrs_post_init__(self) -> None:
        if self.bits not in (2, 3, 4, 8):
            raise ValueError(f"bits must be 2, 3, 4 or 8 (got {self.bits})")

    def check_state(self, state: Any) -> None:
        """With ``pages``: a page no longer than the cache and a budget within its pages."""
        sizes = [g.size for g in state.groups if g.kind == KV_TOKENS]
        if self.mode != "pages" or not sizes:
            return
        tokens = max(sizes)
        if self.page > tokens:
            raise ConfigError(f"adapter kv: page {self.page} is longer than the {tokens} cached tokens "
                              f"(give a page of at most {tokens} tokens)")
        pages = -(-tokens // self.page)
        if isinstance(self.budget, int) and self.budget > pages:
            raise ConfigError(f"adapter kv: budget {self.budget} is more than the {pages} pages of {self.page} tokens "
                              f"in the cache ({tokens} tokens): give at most {pages}, auto or none")

    def auto_knob(self, state: Any) -> Knob | None:
        """With ``pages`` and ``budget auto``: pages per query, from every page down to one."""
        if self.mode != "pages" or self.budget != AUTO:
            return None
        sizes = [g.size for g in state.groups if g.kind == KV_TOKENS]
        most = max(1, -(-max(sizes) // self.page)) if sizes else 1
        return Knob("budget", gentle=most, aggressive=1, integer=True, geometric=True)

    @classmethod
    def from_spec_args(cls, args: list[Any]) -> dict[str, Any]:
        """``[128, 0.1]`` → evict; ``["quant", 2]`` or ``["quant", 2, "kivi"]`` → quant;
        ``["pages", 16, "auto"]`` / ``["pages", 16, 24]`` → pages (page size, budget)."""
        if args and args[0] == "pages":
            if len(args) > 3:
                raise ValueError("expected kv:pages:<page>:<budget>")
            return {"mode": "pages", **dict(zip(("page", "budget"), args[1:]))}
        if args and args[0] == "quant":
            out: dict[str, Any] = {"mode": "quant"}
            for arg in args[1:]:
                if isinstance(arg, int):
                    out["bits"] = arg
                elif arg in ("grouped", "kivi"):
                    out["scheme"] = arg
                elif arg in ("kmeans", "none"):
                    out["reorder"] = arg
                else:
                    raise ValueError(f"unknown option {arg!r} (expected bits, grouped|kivi, kmeans|none)")
            return out
        if len(args) > 2:
            raise ValueError("expected kv:<block>:<drop> or kv:quant:<bits>")
        return dict(zip(("block", "drop"), args))


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="KV cache: block eviction, 2/4-bit quantization, or reads in pages (a page budget)",
                 options=KvOptions, positional=("block", "drop"), abilities=("transform:kv",))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    options = adapter.options
    if options.mode == "pages":
        return plan_pages(state, options, adapter.text, layout.permute)
    if options.mode == "quant":
        from .quant import apply_kv_quant

        return apply_kv_quant(state, options, adapter.text, KV_TOKENS, ctx.seed)
    from .eviction import apply_eviction

    return apply_eviction(state, options, adapter.text, KV_TOKENS)


def plan_pages(state, options: KvOptions, spec: str, permute: bool) -> TransformResult:
    """Record how the cache is read in pages; the workload plans it (it runs attention)."""
    plan = state.workload.plan_pages if isinstance(state.workload, PlansPages) else None
    if plan is None or not any(g.kind == KV_TOKENS for g in state.groups):
        reason = f"workload {state.workload.name!r} has no paged KV cache to read"
        return TransformResult(state=state, meta=TransformMeta.skipped("kv", spec, reason))
    budget = None if options.budget in (None, AUTO) else options.budget
    chosen, evidence, restore = plan(state, options.page, options.selector, permute)
    for group, order in restore.items():  # heads the natural order serves better go back to it
        state = state.permuted(group, order)
    meta = TransformMeta(adapter="kv", spec=spec,
                         details={"kv": {"mode": "pages", "page": options.page, "budget": budget, **chosen}},
                         stats={"selector_choice": evidence,
                                "layout": "as laid out, per head" if permute else "natural order (no permutation)"})
    return TransformResult(state=state.with_transform({}, meta), meta=meta)
