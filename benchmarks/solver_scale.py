"""The solver at scale, side by side in one run: icd spectral (default budget) vs METIS recursive
bisection laid out by part (pymetis) and the Gorder-style greedy window, on planted community
graphs of about 18 nnz per row; then a batch of 90 problems of 4,096 nodes (one per layer and
KV head of a prompt) solved together.

    .venv/bin/python benchmarks/solver_scale.py                      # n = 10k, 100k, 200k, 1M + batch
    .venv/bin/python benchmarks/solver_scale.py --sizes 10000,100000 --batch 90

Each (graph, method) runs in its own process, so its peak memory (max RSS, the graph included;
the graph alone is shown as a baseline; forked chunk workers' own peaks are shown beside it)
and time are its own. Figures: time and the ratio to
METIS-RB's, cut16 (share of edge weight crossing 16-node blocks), lines per access (16-node
lines touched by a node's neighbourhood, 2,000 samples), peak RSS. Targets (issue 16): 100k
≤ 3× METIS-RB's time with cut16 and lines no worse; 200k with the default budget complete,
cut16 ≤ METIS-RB's, ≤ 3× its time; 1M ≤ 120 s and ≤ 4 GB; the batch ≥ 5 problems/s on 2 cores,
the same π whatever the worker count.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
G = 16
DEGREE = 11  # planted_communities draws 11 edges per node: ~18 nnz per row once symmetric


def graph(n: int):
    from icd_solver_spectral.synthetic import planted_communities

    w, _ = planted_communities(n, mean_size=50, degree=DEGREE, seed=n)
    return w


def order_of(method: str, w, seed: int = 0) -> tuple[np.ndarray, dict]:
    if method == "icd":
        from icd_solver_spectral.solve import fit_spectral

        from icd_core.contract.records import Constraints, GraphW
        from icd_core.run.context import Deadline, solver_budget

        fit = fit_spectral(GraphW(matrix=w, meta={}, block=G), Constraints(),
                           Deadline(solver_budget(None, w.shape[0])), seed)
        return fit.perm, {k: fit.stats.get(k) for k in ("method", "budget_s", "timed_out", "levels", "chunks", "workers")}
    from solver_bench import gorder_greedy, metis_order

    return (metis_order(w, seed) if method == "metis" else gorder_greedy(w, seed)), {}


def worker(n: int, method: str) -> dict:
    """One (graph, method) in this process: time, cut16, lines per access, peak RSS."""
    from solver_bench import neighbourhood_accesses

    from icd_core.layout.metrics import cut_g, lines_per_access

    w = graph(n)
    out = {"n": n, "method": method, "nnz_per_row": w.nnz / n}
    if method != "graph":
        t0 = time.perf_counter()
        perm, extra = order_of(method, w)
        out["time_s"] = time.perf_counter() - t0
        assert sorted(perm.tolist()) == list(range(n)), "not a permutation"
        out.update(extra, cut16=cut_g(w, perm, G), lines=lines_per_access(neighbourhood_accesses(w, 0), perm, G))
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # forked chunk workers
    return out


def run_worker(n: int, method: str, timeout: float) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", f"{n}:{method}"], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        return {"n": n, "method": method, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def batch(count: int, workers: int) -> list[str]:
    """``count`` problems of 4,096 nodes solved together; METIS-RB one by one for reference."""
    from icd_solver_spectral.synthetic import planted_communities
    from solver_bench import metis_order

    import icd
    from icd_core.layout.metrics import cut_g

    ws = [planted_communities(4096, mean_size=50, degree=DEGREE, seed=1000 + i)[0] for i in range(count)]
    icd.fit_permutation(ws[:2], time_budget_s=None, workers=1)  # imports and plugin loading, once
    lines = []
    results = {}
    for k in sorted({1, workers}):
        t0 = time.perf_counter()
        results[k] = icd.fit_permutation(ws, time_budget_s=None, workers=k)
        rate = count / (time.perf_counter() - t0)
        cut = np.mean([cut_g(w, pi, G) for w, (pi, _) in zip(ws, results[k])])
        lines.append(f"batch {count} x 4096  icd, {k} worker(s): {rate:6.2f} problems/s, mean cut16 {cut:.4f}")
    t0 = time.perf_counter()
    metis = [metis_order(w, 0) for w in ws]
    rate = count / (time.perf_counter() - t0)
    lines.append(f"batch {count} x 4096  METIS-RB, 1 process: {rate:6.2f} problems/s, mean cut16 "
                 f"{np.mean([cut_g(w, p, G) for w, p in zip(ws, metis)]):.4f}")
    same = all(np.array_equal(a[0], b[0]) for a, b in zip(results[1], results[workers]))
    lines.append(f"same π with 1 and {workers} workers: {same}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,200000,1000000")
    parser.add_argument("--batch", type=int, default=90)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gorder-max", type=int, default=200_000, help="largest n the pure-Python Gorder runs on")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    if args.worker:
        n, method = args.worker.split(":")
        print(json.dumps(worker(int(n), method)))
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        found = {m: run_worker(n, m, 1800) for m in ("graph", "metis", "icd", *(("gorder",) if n <= args.gorder_max else ()))}
        base = found["metis"].get("time_s")
        for method, r in found.items():
            if "error" in r:
                rows.append(f"n={n:>9,}  {method:<7} error: {r['error']}")
            elif method == "graph":
                rows.append(f"n={n:>9,}  {'graph':<7} {r['nnz_per_row']:.1f} nnz/row, building it peaks at {r['peak_mb']:.0f} MB")
            else:
                ratio = f"{r['time_s'] / base:5.2f}x" if base else "  -  "
                flags = f"  budget {r['budget_s']:g} s, timed out {r['timed_out']}, {r['method']}" if method == "icd" else ""
                if r.get("worker_peak_mb"):
                    flags += (f", {r.get('chunks')} chunks on {r.get('workers')} workers "
                              f"peaking at {r['worker_peak_mb']:.0f} MB each")
                rows.append(f"n={n:>9,}  {method:<7} {r['time_s']:7.2f} s ({ratio} METIS)  cut16 {r['cut16']:.4f}  "
                            f"lines {r['lines']:.3f}  peak {r['peak_mb']:.0f} MB{flags}")
        print("\n".join(rows[-len(found):]), flush=True)
    if args.batch:
        rows += batch(args.batch, args.workers)
        print("\n".join(rows[-3:]))
    print("\n== solver_scale")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
