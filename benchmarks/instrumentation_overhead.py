"""Instrumentation overhead vs a bare timed loop, and the cache model's throughput.

Overhead: the same forward ``repeats`` times in a bare loop (one timer around the loop) and
through icd's measurement path (a timer per forward, the thread pinning, the event bus stage
and counters), alternated 7 times; the median relative difference is the overhead
(target < 5 %). Workloads: the mock (numpy, ~1 ms) and MiniLM (torch, ~0.2 s) when installed.
An A/A check (a state timed against itself, 30 interleaved repeats) prints the 95 % CI of
the paired difference. Cache model: accesses simulated per second on a 2 M-access trace.

    .venv/bin/python benchmarks/instrumentation_overhead.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from icd_core import Figure, Samples
from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.layout.cachesim import simulate_lru
from icd_core.run import timing as wc
from icd_core.run.events import EventBus
from icd_core.run.paired import compare

ROUNDS = 7


def bare(state, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        state.run()
    return time.perf_counter() - t0


def instrumented(state, repeats: int, bus: EventBus) -> float:
    t0 = time.perf_counter()
    with bus.stage("measure", branch="x"):
        wc.pin_threads(None)
        samples = wc.interleaved_samples({"x": state}, 0, repeats).ms["x"]
        bus.counter("lat_ms", float(np.median(samples)), branch="x")
    return time.perf_counter() - t0


def overhead(label: str, state, repeats: int) -> float:
    bus = EventBus()
    state.run()
    ratios = []
    for _ in range(ROUNDS):
        a = bare(state, repeats)
        b = instrumented(state, repeats, bus)
        ratios.append(100.0 * (b - a) / a)
    value = statistics.median(ratios)
    print(f"{label:<34} repeats {repeats:>4}  overhead median {value:6.2f} %  "
          f"(rounds: {', '.join(f'{r:.1f}' for r in ratios)})  target < 5 %: {'meets' if value < 5 else 'MISSES'}")
    return value


def a_a_check(state, repeats: int = 30) -> None:
    """The product's determinism check: one state timed against itself, interleaved; the
    95 % CI of the paired difference should contain 0."""
    samples = wc.interleaved_samples({"a": state, "b": state}, 3, repeats).ms
    a, b = (Figure(float(np.median(samples[k])), wc.SOURCE, unit="ms", samples=Samples("round", samples[k], "median"))
            for k in ("a", "b"))
    change = compare("lat_ms", a, b, "relative", 0)
    lo, hi = change.ci95
    print(f"A/A determinism ({repeats} interleaved repeats): change {change.estimate:+.2f} %, "
          f"95 % CI [{lo:+.2f}, {hi:+.2f}] % ({change.basis}) — "
          f"{'contains 0: consistent' if lo <= 0 <= hi else 'EXCLUDES 0: noisy machine'}")


def main() -> None:
    overhead("mock MLP (numpy, ~1 ms/forward)", build_mock_state(MockOptions(), np.random.default_rng(0)), 300)
    try:
        from icd_workload_hf.models import load_minilm
        from icd_workload_hf.plugin import MiniLMOptions

        overhead("MiniLM b8×s128 (torch)", load_minilm(MiniLMOptions(tasks=False), 0), 10)
    except ImportError as exc:
        print(f"MiniLM: skipped ({exc.name} not installed)")
    a_a_check(build_mock_state(MockOptions(), np.random.default_rng(0)))
    lines = np.random.default_rng(0).integers(0, 1 << 20, 2_000_000)
    t0 = time.perf_counter()
    simulate_lru(lines, sets=4096, ways=16)
    seconds = time.perf_counter() - t0
    print(f"cache model: 2,000,000 accesses (4096 sets × 16 ways) in {seconds:.2f} s = "
          f"{2e6 / seconds / 1e6:.2f} M accesses/s")


if __name__ == "__main__":
    main()
