"""Entry point of ``icd-adapter-kv``: ``kv:128:0.1`` (drop 10 % of 128-token blocks) and
``kv:quant:2`` (2-bit K/V cache, channel groups sharing ranges)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from icd_core import hookimpl
from icd_core.validators import between, non_negative, positive

NAME = "kv"
KV_GROUP_KIND = "kv_tokens"


@attrs.frozen
class KvOptions:
    """``evict``: drop ``drop`` of the ``block``-token blocks with the least importance
    (``score``: key norm or the attention mass decoding puts on them), never the first
    ``sinks`` blocks nor the last ``recent`` ones. ``quant``: ``bits``-bit asymmetric K/V;
    ``scheme grouped``: per token, runs of ``group`` channels share a scale, channels first
    re-ordered so runs share ranges (``reorder kmeans``, SKVQ-style); ``kivi``: per-channel
    keys and per-token values (KIVI, the no-permutation reference)."""

    mode: Literal["evict", "quant"] = "evict"
    block: int = attrs.field(default=128, validator=positive())
    drop: float = attrs.field(default=0.1, validator=between(0.0, 0.99))
    sinks: int = attrs.field(default=1, validator=non_negative())
    recent: int = attrs.field(default=1, validator=non_negative())
    score: Literal["key_norm", "attention"] = "key_norm"
    bits: int = 2
    group: int = attrs.field(default=32, validator=positive())
    scheme: Literal["grouped", "kivi"] = "grouped"
    reorder: Literal["kmeans", "none"] = "kmeans"

    def __attrs_post_init__(self) -> None:
        if self.bits not in (2, 3, 4, 8):
            raise ValueError(f"bits must be 2, 3, 4 or 8 (got {self.bits})")

    @classmethod
    def from_spec_args(cls, args: list[Any]) -> dict[str, Any]:
        """``[128, 0.1]`` → evict; ``["quant", 2]`` or ``["quant", 2, "kivi"]`` → quant."""
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
    registry.add("adapter", NAME, summary="KV cache: block eviction (sinks + recent kept) or 2/4-bit quantization",
                 options=KvOptions, positional=("block", "drop"))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name != NAME:
        return None
    options = adapter.options
    if options.mode == "quant":
        from .quant import apply_kv_quant

        return apply_kv_quant(state, options, adapter.text, KV_GROUP_KIND, ctx.seed)
    from .eviction import apply_eviction

    return apply_eviction(state, options, adapter.text, KV_GROUP_KIND)
