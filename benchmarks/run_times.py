"""Wall time of `icd run` per built-in workload against its target, with per-stage times.

Each run goes through the real CLI in a child process (imports and model loading included),
into a temporary directory. Per-stage seconds come from the run's own events.jsonl; the
measure stages are split into per-state figures, the interleaved wall clock and quality.

    python benchmarks/run_times.py                 # the default job and every workload
    python benchmarks/run_times.py --only default mamba

Targets (issue 9): the default job (`make run`) <= 60 s, every built-in workload <= 120 s,
measurement about a third of a run; (issue 23) the 8k-token paged decode run <= 600 s:

    python benchmarks/run_times.py --only smollm2-8k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

JOBS = {
    "default": (["--solver", "spectral", "--adapter", "sparsity:2:4"], 60),
    "minilm": (["--workload", "minilm"], 120),
    "bert-base": (["--workload", "bert-base"], 120),
    "mamba": (["--workload", "mamba"], 120),
    "smollm2": (["--workload", "smollm2"], 120),
    "mlp": (["--workload", "mlp"], 120),
    "mock": (["--workload", "mock"], 120),
    # Opt-in (--only smollm2-8k): long-context decode, 8,160 cached tokens, 90 KV groups (issue 23).
    "smollm2-8k": (["--workload", "smollm2:prompt=8160:decode=32:groups=kv", "--backend", "paged",
                    "--adapter", "kv:pages:16:auto"], 600),
}
OPT_IN = ("smollm2-8k",)
STAGES = ("load_workload", "build_w", "fit_permutation", "transform", "equivalence", "rate_search")
"""``rate_search`` holds its trials' transforms and decodes (they also count under ``transform``)."""


def stage_times(run: Path) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") != "stage":
            continue
        seconds = event["t_end"] - event["t_start"]
        if event["stage"] == "measure":
            what = event["meta"].get("what")
            key = {"quality": "quality", "wall clock, interleaved": "wall clock"}.get(what, "figures")
            out[key] += seconds
        else:
            out[event["stage"]] += seconds
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(JOBS), help="these jobs only")
    args = parser.parse_args()
    names = args.only or [name for name in JOBS if name not in OPT_IN]
    header = (f"{'job':<11} {'wall s':>7} {'target':>6} {'ok':>3}  " + " ".join(f"{s[:9]:>9}" for s in STAGES)
              + f" {'figures':>8} {'wall clk':>8} {'quality':>8} {'measure':>8} {'share':>6}")
    print(header)
    missed = []
    with tempfile.TemporaryDirectory(prefix="icd-times-") as tmp:
        for name in names:
            extra, target = JOBS[name]
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "icd_core.cli", "run", *extra, "--out-dir", tmp,
                                   "--name", name], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                print(f"{name:<11} failed: {done.stderr.strip().splitlines()[-1:]}")
                missed.append(name)
                continue
            times = stage_times(Path(tmp) / name)
            measure = times["figures"] + times["wall clock"] + times["quality"]
            ok = wall <= target
            missed += [] if ok else [name]
            print(f"{name:<11} {wall:7.1f} {target:6d} {'yes' if ok else 'NO':>3}  "
                  + " ".join(f"{times[s]:9.1f}" for s in STAGES)
                  + f" {times['figures']:8.1f} {times['wall clock']:8.1f} {times['quality']:8.1f} {measure:8.1f}"
                  + f" {100 * measure / wall:5.0f}%")
    print(f"time targets met by {len(names) - len(missed)} of {len(names)} jobs"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
