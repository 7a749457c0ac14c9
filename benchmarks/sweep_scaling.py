"""The same 8-trial CPU-bound mock sweep run serially, with the local executor on 2 worker
processes and with Ray (a local instance of 2 CPUs): wall time, the speed-up over serial and
the overhead per trial (wall time beyond the trials' own run durations, per trial).

Every trial runs on one core in all three (serial: the sweep is confined to one core; the
executors give each of 2 workers one core), so the speed-up is what running trials side by
side buys, not a trial's own threads.

    .venv/bin/python benchmarks/sweep_scaling.py [--trials 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """base:
  workload: "mock:hidden=2048:tokens=512"
  solver: {name: spectral}
  transform: {adapters: ["sparsity:2:4"]}
  pipeline: {repeats: 10, warmup_iter: 2, mode: iterative}
  rollback: {enabled: false}
seeds: %s
"""


def sweep(spec: Path, out: Path, name: str, *extra: str, cores: set[int] | None = None) -> dict:
    icd = str(Path(sys.executable).parent / "icd")
    t0 = time.perf_counter()
    done = subprocess.run([icd, "sweep", str(spec), "--out-dir", str(out), "--name", name, *extra],
                          capture_output=True, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{name}: sweep failed: {done.stderr.strip()[-300:]}")
    manifest = json.loads((out / name / "sweep.json").read_text())
    runs = [json.loads((out / name / t["run_dir"] / "metrics.json").read_text())["run"]["duration_s"]
            for t in manifest["trials"]]
    return {"wall_s": wall, "trials": len(runs), "run_s": sum(runs), "summary": done.stdout.strip().splitlines()[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "scaling.yaml"
        spec.write_text(SPEC % list(range(args.trials)))
        out = Path(tmp) / "out"
        first = min(os.sched_getaffinity(0))
        rows["serial"] = {**sweep(spec, out, "serial", "--workers", "1", cores={first}), "workers": 1}
        rows["local x2"] = {**sweep(spec, out, "local", "--workers", "2"), "workers": 2}
        try:
            import ray  # noqa: F401

            rows["ray x2"] = {**sweep(spec, out, "ray", "--workers", "2", "--executor", "ray"), "workers": 2}
        except ImportError:
            rows["ray x2"] = None
    serial = rows["serial"]["wall_s"]
    result = {}
    startup = None
    if rows["ray x2"] is not None:  # the fixed part of Ray's overhead: starting a local instance
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.shutdown()
        startup = round(time.perf_counter() - t0, 2)
    for label, row in rows.items():
        if row is None:
            result[label] = {"reason": "ray is not installed (pip install 'icd-co[ray]')"}
            continue
        overhead = (row["wall_s"] - row["run_s"] / row["workers"]) / row["trials"]
        result[label] = {"wall_s": round(row["wall_s"], 2), "speedup_vs_serial": round(serial / row["wall_s"], 3),
                         "overhead_per_trial_s": round(overhead, 3), "run_s_total": round(row["run_s"], 2)}
    if startup is not None:
        result["ray x2"]["ray_startup_s"] = startup
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{'executor':<10} {'wall s':>8} {'speed-up':>9} {'overhead/trial s':>17}   ({args.trials} trials; target ≥ 1.7×)")
    for label, r in result.items():
        if "reason" in r:
            print(f"{label:<10} {'-':>8} {'-':>9} {'-':>17}   {r['reason']}")
        else:
            extra = f"   (of the overhead: {r['ray_startup_s']:.1f} s to start Ray)" if "ray_startup_s" in r else ""
            print(f"{label:<10} {r['wall_s']:8.1f} {r['speedup_vs_serial']:8.2f}x {r['overhead_per_trial_s']:17.2f}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
