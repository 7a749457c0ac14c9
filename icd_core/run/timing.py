"""Timing forwards: warmed-up repeats, shuffled interleaved rounds over several states,
pinned thread pools, and the latency / throughput figures made from the samples.

``perf_counter_ns`` on the CPU, CUDA events (after a synchronise) on a GPU. numpy's BLAS/OpenMP
pools (threadpoolctl) and torch's are pinned (``measure.threads``) and recorded. Interleaved
rounds time every state once per round, the order shuffled per round, so drift hits all alike
and the per-round ratios pair (:mod:`icd_core.run.paired`). The ``wallclock`` measure and the
pipeline's interleaved timing both use it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from icd_core.contract.abilities import TimesRegions
from icd_core.contract.records import Figure, Samples
from icd_core.run.stats import summarize

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


def available_cores() -> list[int]:
    """The cores this process may run on (its CPU affinity; all of them where that is unknown)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive integer, else the cores of this process's
    CPU affinity (:func:`available_cores`)."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return len(available_cores())


def pin_threads(threads: int | None) -> dict[str, Any]:
    """Pin torch's intra-op pool and numpy's BLAS/OpenMP pools (threadpoolctl) to ``threads``
    (default: ``OMP_NUM_THREADS`` when set — a sweep or Ray sets it per trial — else every
    core this process may run on) and say what is in effect. Returns the record; undo with
    :func:`unpin_threads`."""
    from threadpoolctl import threadpool_info, threadpool_limits

    wanted = threads or default_threads()
    limiter = threadpool_limits(limits=wanted)
    pools = sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})
    record: dict[str, Any] = {"threads": wanted, "pinned": True, "pools": pools,
                              "by": "threadpoolctl (BLAS/OpenMP)", "_limiter": limiter}
    torch = sys.modules.get("torch")
    if torch is not None:
        record["torch_previous"] = torch.get_num_threads()
        torch.set_num_threads(wanted)
        record["by"] += " + torch.set_num_threads"
    return record


def unpin_threads(record: dict[str, Any]) -> dict[str, Any]:
    """Restore the pools :func:`pin_threads` changed; returns the record without handles."""
    record = dict(record)
    limiter = record.pop("_limiter", None)
    if limiter is not None:
        limiter.restore_original_limits()
    previous = record.pop("torch_previous", None)
    torch = sys.modules.get("torch")
    if torch is not None and previous:
        torch.set_num_threads(previous)
    return record


def time_forward(state, warmup: int, repeats: int) -> list[float]:
    """Milliseconds per forward, ``repeats`` samples after ``warmup`` untimed runs."""
    return interleaved_samples({"x": state}, warmup, repeats).ms["x"]


Decided = Callable[[Mapping[str, list[float]]], bool]


@attrs.frozen
class Sampling:
    """Interleaved timing rounds: per state its milliseconds per round (``ms``), its first
    output (so a quality measure need not run the forward again) and, per named region of the
    forward a workload reports (``workload.region_ms()``, e.g. attention), milliseconds per round."""

    ms: dict[str, list[float]]
    outputs: dict[str, Any]
    regions: dict[str, dict[str, list[float]]]

    @property
    def rounds(self) -> int:
        return len(next(iter(self.ms.values())))


def interleaved_samples(states: Mapping[str, Any], warmup: int, repeats: int, *, min_rounds: int | None = None,
                        decided: Decided | None = None, check_every: int = 2,
                        rng: np.random.Generator | None = None) -> Sampling:
    """Per state, one timing per round; each round runs every state once, in an order
    shuffled per round (seeded ``rng``), after ``warmup`` untimed rounds.

    At most ``repeats`` rounds; with ``decided``, sampling stops early — after at least
    ``min_rounds`` rounds, checked every ``check_every`` — once ``decided(samples)`` says every
    comparison that matters is settled.
    """
    rng = rng or np.random.default_rng(0)
    labels = list(states)
    timers = {label: timer_for(s.workload.device) for label, s in states.items()}
    outputs: dict[str, Any] = {}
    regions: dict[str, dict[str, list[float]]] = {}

    def run(label: str) -> Callable[[], Any]:
        def call() -> Any:
            out = states[label].run()
            outputs.setdefault(label, out)
            return out
        return call

    calls = {label: run(label) for label in labels}
    for _ in range(warmup):
        for label in rng.permutation(labels):
            calls[label]()
    samples: dict[str, list[float]] = {label: [] for label in states}
    floor = min(repeats, min_rounds if min_rounds is not None else repeats)
    for done in range(1, repeats + 1):
        for label in rng.permutation(labels):
            samples[label].append(timers[label](calls[label]))
            workload = states[label].workload
            if isinstance(workload, TimesRegions):
                for region, ms in workload.region_ms().items():
                    regions.setdefault(label, {}).setdefault(region, []).append(ms)
        if decided is not None and done >= floor and (done - floor) % check_every == 0 and decided(samples):
            break
    return Sampling(ms=samples, outputs=outputs, regions=regions)


def figures_from(samples: list[float], tokens: int, warmup: int, seed: int, device: str,
                 threads: Mapping[str, Any], interleaved_with: list[str] | None = None) -> dict[str, Figure]:
    summary = summarize(samples)
    median = summary.pop("median")
    detail = {**summary, "warmup": warmup, "threads": {k: v for k, v in threads.items() if not k.startswith("_")},
              "device": device, "timer": "cuda-events" if device.startswith("cuda") else "perf_counter_ns",
              "samples_ms": [round(x, 6) for x in samples]}
    if interleaved_with:
        detail["interleaved_with"] = interleaved_with
        detail["round_order"] = "shuffled per round (seeded)"
    rounds = Samples("round" if interleaved_with else "window", samples, statistic="median")
    throughput = Samples(rounds.unit, [tokens / (x / 1e3) for x in samples], statistic="median")
    return {
        "lat_ms": Figure(median, SOURCE, unit="ms", detail={"median": median, **detail}, samples=rounds),
        "toks_per_s": Figure(tokens / (median / 1e3), SOURCE, unit="tok/s", detail={"tokens": tokens},
                             samples=throughput),
    }
