"""Built-in measure ``wallclock``: latency and throughput of the workload's forward.

``warmup_iter`` runs are excluded, then ``repeats`` timed runs on the same fixed batch:
``perf_counter_ns`` on the CPU, CUDA events (after a synchronise) on a GPU. Reports
``lat_ms`` (median, p95, bootstrap 95 % CI, outlier count) and ``toks_per_s``; the thread
count is pinned (``measure.threads``) and recorded. In a run, the pipeline times the pre-run,
linear and iterative states together, interleaved (A B C A B C …) so drift hits all alike,
and adds paired ratios with their bootstrap CI.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..markers import hookimpl
from ..records import Figure
from ..stats import summarize

NAME = "wallclock"
SOURCE = "measured:wallclock"


def _cuda_timer() -> Callable[[Callable[[], Any]], float]:
    import torch

    def time_call(call: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        return float(start.elapsed_time(end))

    return time_call


def _cpu_timer(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - t0) / 1e6


def timer_for(device: str) -> Callable[[Callable[[], Any]], float]:
    """Milliseconds of one call: CUDA events on a GPU, ``perf_counter_ns`` on the CPU."""
    return _cuda_timer() if device.startswith("cuda") else _cpu_timer


def pin_threads(threads: int | None) -> dict[str, Any]:
    """Pin torch's intra-op threads (when torch is in use) and say what is in effect."""
    torch = sys.modules.get("torch")
    wanted = threads or os.cpu_count() or 1
    if torch is not None:
        torch.set_num_threads(wanted)
        return {"threads": torch.get_num_threads(), "pinned": True, "by": "torch.set_num_threads"}
    return {"threads": os.environ.get("OMP_NUM_THREADS", "BLAS default"), "pinned": False,
            "by": "numpy/BLAS picks its own threads (set OMP_NUM_THREADS before start to pin)"}


def time_forward(state, warmup: int, repeats: int) -> list[float]:
    """Milliseconds per forward, ``repeats`` samples after ``warmup`` untimed runs."""
    return interleaved_samples({"x": state}, warmup, repeats)["x"]


def interleaved_samples(states: Mapping[str, Any], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Per state, ``repeats`` timings taken round-robin (A B C A B C …) after warm-up."""
    timers = {label: timer_for(s.workload.device) for label, s in states.items()}
    for _ in range(warmup):
        for s in states.values():
            s.run()
    samples: dict[str, list[float]] = {label: [] for label in states}
    for _ in range(repeats):
        for label, s in states.items():
            samples[label].append(timers[label](s.run))
    return samples


def figures_from(samples: list[float], tokens: int, warmup: int, seed: int, device: str,
                 threads: Mapping[str, Any], interleaved_with: list[str] | None = None) -> dict[str, Figure]:
    summary = summarize(samples, seed=seed)
    median = summary.pop("median")
    detail = {**summary, "warmup": warmup, "threads": dict(threads), "device": device,
              "timer": "cuda-events" if device.startswith("cuda") else "perf_counter_ns"}
    if interleaved_with:
        detail["interleaved_with"] = interleaved_with
    return {
        "lat_ms": Figure(median, SOURCE, unit="ms", detail={"median": median, **detail}),
        "toks_per_s": Figure(tokens / (median / 1e3), SOURCE, unit="tok/s", detail={"tokens": tokens}),
    }


def paired_ratio(a: list[float], b: list[float], seed: int) -> dict[str, float]:
    """Median of per-round ratios b/a (rounds were interleaved) with a bootstrap 95 % CI, in %."""
    ratios = np.asarray(b, dtype=np.float64) / np.asarray(a, dtype=np.float64)
    stats = summarize(100.0 * (ratios - 1.0), seed=seed)
    return {"median_pct": stats["median"], "ci95_pct": stats["ci95"], "rounds": stats["n"]}


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="latency (median, p95, 95% CI) and tokens/s by wall clock",
                 provides=("lat_ms", "toks_per_s"))


@hookimpl
def icd_measure(ctx, measure, state):
    if measure.name != NAME:
        return None
    cfg = ctx.config.pipeline
    threads = pin_threads(ctx.config.measure.threads)
    samples = time_forward(state, cfg.warmup_iter, cfg.repeats)
    return figures_from(samples, state.workload.tokens, cfg.warmup_iter, ctx.seed, state.workload.device, threads)
