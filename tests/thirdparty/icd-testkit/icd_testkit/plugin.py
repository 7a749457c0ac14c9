"""Adapters that fail on purpose.

``sleepy``: touches the file named by ``ICD_TESTKIT_MARKER`` and sleeps (to be killed).
``explode``: raises mid-transform after building (but not returning) a modified state.
``degrade``: adds large noise to every input-dim weight (a quality regression).
``inplace``: halves every tensor of the state it was given, in place (breaks the contract).
``floaty`` (a measure): returns a bare float instead of Figure records (breaks the contract).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from icd_core import TransformMeta, TransformResult, hookimpl
from icd_core.toolkit import tensors as T


@hookimpl
def icd_register(registry):
    registry.add("adapter", "sleepy", summary="touch $ICD_TESTKIT_MARKER, then sleep 60 s")
    registry.add("adapter", "explode", summary="raise in the middle of a transform")
    registry.add("adapter", "degrade", summary="add noise to weights (quality regression)")
    registry.add("adapter", "inplace", summary="halve every tensor in place (a contract breach)")
    registry.add("measure", "floaty", summary="return a float, not Figures (a contract breach)", opt_in=True)


@hookimpl
def icd_measure(ctx, measure, state):
    if measure.name == "floaty":
        return {"lat_ms": 1.0}
    return None


def _in_tensors(state):
    return sorted({m.tensor for g in state.groups for m in g.members if m.role == "in"})


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name == "sleepy":
        Path(os.environ["ICD_TESTKIT_MARKER"]).write_text("reached")
        time.sleep(60)
        return TransformResult(state=state, meta=TransformMeta.skipped("sleepy", adapter.text, "woke up"))
    if adapter.name == "explode":
        state.with_tensors({n: T.to_numpy(state.tensors[n]) * 0 for n in _in_tensors(state)})
        raise RuntimeError("injected adapter failure")
    if adapter.name == "degrade":
        rng = np.random.default_rng(0)
        updates = {}
        for n in _in_tensors(state):
            w = T.to_numpy(state.tensors[n])
            updates[n] = (w + rng.standard_normal(w.shape).astype(w.dtype) * np.abs(w).mean() * 3).astype(w.dtype)
        meta = TransformMeta(adapter="degrade", spec=adapter.text, stats={"tensors": sorted(updates)})
        return TransformResult(state=state.with_transform(updates, meta), meta=meta)
    if adapter.name == "inplace":
        for tensor in state.tensors.values():
            tensor *= 0.5
        meta = TransformMeta(adapter="inplace", spec=adapter.text)
        return TransformResult(state=state.with_transform({}, meta), meta=meta)
    return None
