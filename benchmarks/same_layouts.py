"""Do two commits give the same W, W′ and π₀ / π₁ for the same seed?

Runs a fixed set of ``icd run`` configurations and saves their ``W.npz``, ``W_prime.npz`` and
``perm.json`` arrays and their metrics without timing; ``--against DIR`` compares a fresh set with
one saved earlier (by another commit) array by array and metric by metric, and prints one line
per run. Exit 1 on any difference. "Without timing": every key naming a time (``*_s``, ``*_ms``,
``lat_*``, ``toks_per_s``, ``started``, ``timing``, ``events``, ``env``), the verdict text and the
gates (whose latency verdicts are timed) are left out; quality, layout metrics, state digests, transforms,
fits (C, Q, cache), rate searches, equivalence and rollbacks are compared exactly.

    python benchmarks/same_layouts.py --save /tmp/before      # on the old commit
    python benchmarks/same_layouts.py --against /tmp/before   # on the new one
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNS = {
    "mock-2of4": ["--workload", "mock", "--solver", "spectral", "--adapter", "sparsity:2:4"],
    "mlp-int4": ["--workload", "mlp", "--solver", "spectral", "--adapter", "quant:int4:g32"],
    "default": ["--solver", "spectral", "--adapter", "sparsity:2:4"],
    "smollm2-kv": ["--workload", "smollm2:groups=kv", "--solver", "spectral", "--adapter", "kv:128:0.1"],
}


def arrays_of(run_dir: Path) -> dict[str, np.ndarray]:
    """Every array a run's layout is made of, by a stable name."""
    out: dict[str, np.ndarray] = {}
    for name in ("W", "W_prime"):
        path = run_dir / f"{name}.npz"
        if path.exists():
            with np.load(path) as z:
                out.update({f"{name}:{key}": z[key] for key in z.files})
    perms = json.loads((run_dir / "perm.json").read_text())["groups"]
    for group, entry in perms.items():
        for key, value in entry.items():
            if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
                out[f"perm:{group}:{key}"] = np.asarray(value)
    return out


TIMED_KEYS = {"timing", "started", "events", "env", "verdict", "plugins", "gates", "lat_ms", "toks_per_s",
              "ms_per_token", "attention_ms", "stopped_at", "rounds"}


def untimed(value):
    """``value`` without any key that names a time or a timed figure (recursively)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items()
                if k not in TIMED_KEYS and not k.endswith(("_s", "_ms")) and not k.startswith("lat_")}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def metrics_of(run_dir: Path) -> str:
    """The run's metrics.json without timing, as canonical JSON."""
    return json.dumps(untimed(json.loads((run_dir / "metrics.json").read_text())), sort_keys=True)


def run_all(out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    results = {}
    for name, args in RUNS.items():
        cmd = [str(Path(sys.executable).parent / "icd"), "run", *args, "--mode", "compare", "--seed", "0",
               "--repeats", "3", "--out-dir", str(out_dir), "--name", name, "--force"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if not (out_dir / name / "perm.json").exists():
            sys.exit(f"{name}: run failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
        results[name] = {**arrays_of(out_dir / name), "metrics": np.asarray(metrics_of(out_dir / name))}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="save this commit's arrays here")
    parser.add_argument("--against", type=Path, help="compare this commit's arrays with those saved here")
    args = parser.parse_args()
    if not (args.save or args.against):
        parser.error("give --save DIR or --against DIR")
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(Path(tmp))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for name, arrays in results.items():
            np.savez(args.save / f"{name}.npz", **{k.replace("/", "|"): v for k, v in arrays.items()})
        print(f"saved {sum(len(a) for a in results.values())} arrays of {len(results)} runs to {args.save}")
        return 0
    differences = 0
    print(f"{'run':<12} {'arrays':>6} {'equal':>6}  different")
    for name, arrays in results.items():
        with np.load(args.against / f"{name}.npz") as z:
            before = {k.replace("|", "/"): z[k] for k in z.files}
        keys = sorted(set(before) | set(arrays))
        different = [k for k in keys if k not in before or k not in arrays
                     or before[k].shape != arrays[k].shape or not np.array_equal(before[k], arrays[k])]
        differences += len(different)
        print(f"{name:<12} {len(keys):>6} {len(keys) - len(different):>6}  {', '.join(different[:6]) or '-'}")
    print("same layouts" if not differences else f"{differences} arrays differ")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
