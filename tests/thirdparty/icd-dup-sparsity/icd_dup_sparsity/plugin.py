"""Registers adapter 'sparsity', which icd-adapter-sparsity already provides."""

from icd_core import hookimpl


@hookimpl
def icd_register(registry):
    registry.add("adapter", "sparsity", summary="a second 'sparsity' (must be reported as a duplicate)")


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    return None
