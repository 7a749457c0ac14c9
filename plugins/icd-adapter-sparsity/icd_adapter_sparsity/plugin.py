"""Entry point of ``icd-adapter-sparsity``: ``--adapter sparsity:2:4`` (N:M along the input dim)."""

from __future__ import annotations

import attrs

from icd_core import hookimpl
from icd_core.validators import positive

NAME = "sparsity"


@attrs.frozen
class SparsityOptions:
    """Keep ``n`` of every ``m`` consecutive weights along the reduction dimension."""

    n: int = attrs.field(default=2, validator=positive())
    m: int = attrs.field(default=4, validator=positive())

    def __attrs_post_init__(self) -> None:
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be < m ({self.m})")


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="N:M magnitude pruning (e.g. 2:4) along each weight's input dimension",
                 options=SparsityOptions, positional=("n", "m"))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name != NAME:
        return None
    from .nm import apply_nm

    return apply_nm(state, adapter.options, adapter.text)
