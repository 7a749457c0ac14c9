"""Built-in measure ``wallclock``: latency and throughput of the workload's forward.

``warmup_iter`` runs are excluded, then ``repeats`` timed runs on the same fixed batch
(``perf_counter_ns``; on CUDA each run is synchronised). Reports ``lat_ms`` (median, p95,
bootstrap 95 % CI, outlier count) and ``toks_per_s``.
"""

from __future__ import annotations

import os
import sys
import time

from ..markers import hookimpl
from ..records import Figure
from ..stats import summarize

NAME = "wallclock"
SOURCE = "measured:wallclock"


def _synchronizer(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _threads() -> object:
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    return os.environ.get("OMP_NUM_THREADS", "unpinned")


def time_forward(state, warmup: int, repeats: int) -> list[float]:
    """Milliseconds per forward, ``repeats`` samples after ``warmup`` untimed runs."""
    sync = _synchronizer(state.workload.device)
    for _ in range(warmup):
        state.run()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        state.run()
        sync()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="latency (median, p95, 95% CI) and tokens/s by wall clock",
                 provides=("lat_ms", "toks_per_s"))


@hookimpl
def icd_measure(ctx, measure, state):
    if measure.name != NAME:
        return None
    cfg = ctx.config.pipeline
    samples = time_forward(state, cfg.warmup_iter, cfg.repeats)
    summary = summarize(samples, seed=ctx.seed)
    median = summary.pop("median")
    detail = {**summary, "warmup": cfg.warmup_iter, "threads": _threads(),
              "device": state.workload.device, "timer": "perf_counter_ns"}
    tokens = state.workload.tokens
    return {
        "lat_ms": Figure(median, SOURCE, unit="ms", detail={"median": median, **detail}),
        "toks_per_s": Figure(tokens / (median / 1e3), SOURCE, unit="tok/s", detail={"tokens": tokens}),
    }
