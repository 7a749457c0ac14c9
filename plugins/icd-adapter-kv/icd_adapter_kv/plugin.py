"""Entry point of ``icd-adapter-kv``: ``kv:128:0.1`` drops 10 % of 128-token KV blocks."""

from __future__ import annotations

import attrs

from icd_core import hookimpl
from icd_core.validators import between, non_negative, positive

NAME = "kv"
KV_GROUP_KIND = "kv_tokens"


@attrs.frozen
class KvOptions:
    """Evict ``drop`` of the ``block``-token blocks with the lowest key norm, never the first
    ``sinks`` blocks (attention sinks) nor the last ``recent`` blocks."""

    block: int = attrs.field(default=128, validator=positive())
    drop: float = attrs.field(default=0.1, validator=between(0.0, 0.99))
    sinks: int = attrs.field(default=1, validator=non_negative())
    recent: int = attrs.field(default=1, validator=non_negative())


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="KV-cache block eviction by key norm, keeping sinks and a recent window",
                 options=KvOptions, positional=("block", "drop"))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name != NAME:
        return None
    from .eviction import apply_eviction

    return apply_eviction(state, adapter.options, adapter.text, KV_GROUP_KIND)
