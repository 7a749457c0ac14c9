"""Regression gates on micro-benchmarks, against committed baselines (CI runs this).

Five figures, each compared with ``benchmarks/baselines/regression.json`` (value, direction and
tolerance per figure):

- ``solver_time``: the spectral solver on a planted graph of n = 2,500 (g = 16), as a ratio of
  its time to a *reference run in the same process* (a fixed scipy/numpy/Python workload that no
  icd code touches), so a faster or slower machine moves both and the ratio stays;
- ``efficacy_2_4_apex``: 2:4 channel-search efficacy (% of the gap between the default order and
  the per-row bound) on Apex's reference matrix, with a fixed number of rounds (deterministic);
- ``cache_model_throughput``: cache-model accesses simulated per reference time unit;
- ``event_bus_overhead``: the time of 2,000 stage events written to events.jsonl, per reference unit;
- ``report_time``: rendering report.csv and report.html of a finished mock run, per reference unit.

Times are medians over interleaved repeats (reference, figure, reference, …) of paired ratios.
A figure beyond its tolerance fails with its name and both values; one much better than its
baseline is reported (update the baseline with ``--update``, and say why in the commit).

    .venv/bin/python benchmarks/regression_gates.py                    # all gates, exit 1 on a regression
    .venv/bin/python benchmarks/regression_gates.py --only solver_time --repeats 5
    .venv/bin/python benchmarks/regression_gates.py --update           # rewrite the baselines' values
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the figures do not depend on the core count

BASELINES = Path(__file__).resolve().parent / "baselines" / "regression.json"


def reference_work() -> None:
    """A fixed workload of the solver's kind (sparse eigenproblems, Python loops over rows; about
    0.15 s on one core here), touching no icd code: the time unit of the timed figures."""
    rng = np.random.default_rng(12345)
    n = 2500
    a = sp.random(n, n, density=8 / n, random_state=rng, format="csr")
    a = (a + a.T).tocsr()
    lap = sp.diags(np.asarray(a.sum(axis=1)).ravel()) - a
    total = 0.0
    for _ in range(8):
        spla.eigsh(lap, k=8, which="LA", v0=np.ones(n), tol=1e-8)
        for row in range(n):
            lo, hi = a.indptr[row], a.indptr[row + 1]
            total += float(a.data[lo:hi].sum())


def paired_ratio(work: Callable[[], object], repeats: int) -> float:
    """Median over interleaved pairs of (work time / reference time), after one warm-up pair."""
    reference_work()
    work()
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference_work()
        t1 = time.perf_counter()
        work()
        t2 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
    return float(statistics.median(ratios))


def solver_time(repeats: int) -> float:
    import icd

    w = icd.build_w("mock", n=2500, blocks=156, noise=0.05, seed=0)
    return paired_ratio(lambda: icd.fit_permutation(w, time_budget_s=300, solver="spectral", block=16), repeats)


def efficacy_2_4_apex(repeats: int) -> float:
    from icd_adapter_sparsity.efficacy import search

    rng = np.random.RandomState(1)  # Apex's reference matrix: np.random.seed(1); np.random.rand(128, 64)
    w = rng.rand(128, 64)
    _, stats = search(w, 2, 4, budget_s=60.0, seed=0, rounds=16)
    return float(stats["efficacy_pct"])


def cache_model_throughput(repeats: int) -> float:
    from icd_core.layout.cachesim import simulate_lru

    lines = np.random.default_rng(0).integers(0, 1 << 20, 400_000)
    ratio = paired_ratio(lambda: simulate_lru(lines, sets=4096, ways=16), repeats)
    return lines.size / ratio  # accesses per reference unit


def event_bus_overhead(repeats: int) -> float:
    from icd_core.run.events import EventBus

    def emit() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bus = EventBus(Path(tmp) / "events.jsonl")
            for i in range(2000):
                with bus.stage("measure", branch="linear", step=i) as meta:
                    bus.counter("lat_ms", 1.0 + i, branch="linear")
                    meta["note"] = "x"
            bus.close()

    return paired_ratio(emit, repeats)


def report_time(repeats: int) -> float:
    import icd
    from icd_core.plugin import dispatch
    from icd_core.report.finished import load_run
    from icd_core.run.artifacts import ArtifactDir
    from icd_core.run.context import RunContext

    with tempfile.TemporaryDirectory() as tmp:
        result = icd.run({"workload": "mock", "solver.name": "spectral", "pipeline.repeats": 3,
                          "transform.adapters": ["sparsity:2:4", "quant:int8"]},
                         out_dir=tmp, name="gate")
        if not result.ok:
            raise RuntimeError(f"report_time: the mock run failed ({result.error})")
        manager = icd._manager()
        record = load_run(result.path)
        from icd_core.config.files import load_config

        ctx = RunContext(config=load_config(), registry=manager.registry, run_dir=ArtifactDir(result.path))
        return paired_ratio(lambda: dispatch.report(manager, ctx, record), repeats)


@attrs.frozen
class Gate:
    name: str
    label: str
    unit: str
    measure: Callable[[int], float]


GATES = (
    Gate("solver_time", "spectral solver time, n = 2,500", "× reference", solver_time),
    Gate("efficacy_2_4_apex", "2:4 efficacy on the Apex matrix", "%", efficacy_2_4_apex),
    Gate("cache_model_throughput", "cache-model throughput", "accesses / reference", cache_model_throughput),
    Gate("event_bus_overhead", "event-bus time, 2,000 stage events", "× reference", event_bus_overhead),
    Gate("report_time", "report time (csv + html, mock run with 2:4 and int8)", "× reference", report_time),
)


def judge(name: str, label: str, unit: str, value: float, baseline: dict) -> tuple[bool, str]:
    """(passed, one line) for a measured ``value`` against its baseline entry."""
    base, tol, direction = float(baseline["value"]), float(baseline["tolerance"]), baseline["direction"]
    if baseline.get("kind", "relative") == "absolute":
        limit = base + tol if direction == "lower" else base - tol
    else:
        limit = base * (1 + tol) if direction == "lower" else base * (1 - tol)
    worse = value > limit if direction == "lower" else value < limit
    better = value < base / (1 + tol) if direction == "lower" else value > base * (1 + tol)
    text = f"{label} ({name}): {value:.4g} {unit} vs baseline {base:.4g} (limit {limit:.4g}, {direction} is better)"
    if worse:
        return False, f"REGRESSION {text}"
    return True, ("ok, much better than baseline (update it) " if better else "ok ") + text


def run_gates(only: list[str] | None, repeats: int, baselines: dict) -> tuple[bool, dict[str, float], list[str]]:
    from threadpoolctl import threadpool_limits

    ok, measured, lines = True, {}, []
    with threadpool_limits(1):  # one core, whatever the process's pools were set to before
        for gate in GATES:
            if only and gate.name not in only:
                continue
            if gate.name not in baselines:
                ok = False
                lines.append(f"REGRESSION {gate.label} ({gate.name}): no baseline in {BASELINES.name}")
                continue
            value = gate.measure(repeats)
            measured[gate.name] = value
            passed, line = judge(gate.name, gate.label, gate.unit, value, baselines[gate.name])
            ok &= passed
            lines.append(line)
    return ok, measured, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[g.name for g in GATES])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baselines", type=Path, default=BASELINES)
    parser.add_argument("--update", action="store_true", help="write the measured values as the new baselines")
    args = parser.parse_args(argv)
    try:
        baselines = json.loads(args.baselines.read_text())
    except (OSError, ValueError) as exc:
        print(f"regression gates: {args.baselines}: cannot read the baselines ({exc})", file=sys.stderr)
        return 1
    ok, measured, lines = run_gates(args.only, args.repeats, baselines)
    for line in lines:
        print(line, file=sys.stdout if line.startswith("ok") else sys.stderr)
    if args.update:
        for name, value in measured.items():
            baselines[name]["value"] = round(value, 6)
        args.baselines.write_text(json.dumps(baselines, indent=2, sort_keys=True) + "\n")
        print(f"regression gates: wrote {len(measured)} baselines to {args.baselines}")
        return 0
    print(f"regression gates: {'pass' if ok else 'FAIL'} ({len(lines)} figures)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
