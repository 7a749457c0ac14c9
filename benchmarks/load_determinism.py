"""The same seed gives the same π on a loaded machine: one quiet mock run, then N concurrent ones
(default 20, all on this machine's cores at once), every π₀ / π₁ of every group compared with the
quiet run's, and the solvers' time-outs counted.

    .venv/bin/python benchmarks/load_determinism.py            # 20 concurrent runs
    .venv/bin/python benchmarks/load_determinism.py --runs 8
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

ICD = [sys.executable, "-m", "icd_core.cli"]


def start(out: Path, name: str, seed: int) -> subprocess.Popen:
    return subprocess.Popen([*ICD, "run", "--workload", "mock", "--seed", str(seed), "--out-dir", str(out),
                             "--name", name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def layouts(run: Path) -> tuple[dict, list[bool]]:
    perm = json.loads((run / "perm.json").read_text())
    fits = json.loads((run / "metrics.json").read_text()).get("fits", [])
    return perm["groups"], [bool(f.get("stats", {}).get("timed_out")) for f in fits]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        quiet = start(out, "quiet", args.seed)
        if quiet.wait() != 0:
            sys.exit(f"quiet run failed: {quiet.stderr.read()}")
        quiet_s = time.perf_counter() - t0
        reference, _ = layouts(out / "quiet")
        t0 = time.perf_counter()
        loaded = [start(out, f"loaded-{k}", args.seed) for k in range(args.runs)]
        failed = [p.stderr.read() for p in loaded if p.wait() != 0]
        loaded_s = time.perf_counter() - t0
        same = timeouts = 0
        for k in range(args.runs):
            if not (out / f"loaded-{k}" / "perm.json").is_file():
                continue
            groups, timed_out = layouts(out / f"loaded-{k}")
            same += groups == reference
            timeouts += any(timed_out)
    print(f"quiet run {quiet_s:.1f} s; {args.runs} concurrent runs on {os.cpu_count()} cores in {loaded_s:.1f} s "
          f"({len(failed)} failed)")
    print(f"π₀ and π₁ of every group identical to the quiet run's: {same}/{args.runs}; "
          f"runs whose solver hit its wall-clock cap: {timeouts}")
    if failed:
        print("first failure:", failed[0].strip().splitlines()[-1])
    sys.exit(0 if same == args.runs else 1)


if __name__ == "__main__":
    main()
