"""A/A calibration: identical states must never pass a gate nor trigger a rollback.

Each seed runs the whole pipeline on the mock workload with the identity solver and no
adapter, so pre, linear and iterative are the same state (same digest). Modelled figures are
allowed to decide (``gates.allow_modelled``) and the quality rollback is at its strictest
(``rollback.quality_pp = 0``), so every gate and tolerance is exercised. Beside each verdict
the benchmark prints what the old rule — unpaired medians against the target — would have
said on the same samples.

    python benchmarks/aa_calibration.py              # 20 seeds
    python benchmarks/aa_calibration.py --seeds 5    # the CI version
    python benchmarks/aa_calibration.py --load       # with a busy-looping process beside it

The last line is the summary: false passes and false rollbacks out of the seeds run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from icd_core.cli.launch import launch_committed
from icd_core.config.files import load_config
from icd_core.plugin.manager import load_plugin_manager
from icd_core.run.artifacts import RunDirectory
from icd_core.run.selection import select

COST_GATES = ("latency", "l2_hit", "energy_per_token")
SETTINGS = {"workload": "mock", "solver.name": "identity", "transform.adapters": [], "gates.allow_modelled": True,
            "rollback.quality_pp": 0.0}


def busy(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def one_run(manager, out: Path, seed: int) -> dict:
    config = load_config(cli={**SETTINGS, "seed": seed, "report.out_dir": str(out), "report.formats": []})
    outcome = launch_committed(manager, select(config, manager.registry), RunDirectory(out, f"aa-{seed}").open())
    return outcome.record.metrics


def unpaired_pct(metrics: dict) -> float:
    """The old rule's number: median of iterative vs median of linear, unpaired."""
    results = metrics["results"]
    return 100.0 * (results["iterative"]["figures"]["lat_ms"]["value"] / results["linear"]["figures"]["lat_ms"]["value"] - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--load", action="store_true", help="run a busy process beside the pipeline")
    args = parser.parse_args()
    manager = load_plugin_manager()
    stop = multiprocessing.Event()
    loader = multiprocessing.Process(target=busy, args=(stop,), daemon=True) if args.load else None
    if loader:
        loader.start()
    print(f"{'seed':>4} {'same state':>10} {'latency change % [95 % CI]':>30} {'rounds':>6} {'gates passed':>13} "
          f"{'rollback':>8} {'unpaired old rule':>18}")
    false_pass = false_rollback = old_pass = 0
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="icd-aa-") as tmp:
            for done, seed in enumerate(range(args.seeds), start=1):
                m = one_run(manager, Path(tmp), seed)
                digests = {r["state_digest"] for r in m["results"].values()}
                verdicts = {v["gate"]: v for v in m["gates"]["verdicts"]}
                passed = [g for g in COST_GATES if verdicts[g]["verdict"] == "pass"]
                lat = verdicts["latency"]
                old = unpaired_pct(m)
                false_pass += bool(passed)
                false_rollback += m["rollback"] is not None
                old_pass += old <= lat["target"]
                ci = lat["ci95"]
                print(f"{seed:>4} {'yes' if len(digests) == 1 else 'NO':>10} "
                      f"{lat['value']:+9.2f} [{ci[0]:+7.2f}, {ci[1]:+7.2f}] {m['timing']['rounds']:>6} "
                      f"{','.join(passed) or '-':>13} {'YES' if m['rollback'] else 'no':>8} "
                      f"{old:+9.2f} {'pass' if old <= lat['target'] else 'fail':>8}")
                print(f"A/A so far: {done} seeds, false passes {false_pass}/{done}, "
                      f"false rollbacks {false_rollback}/{done}", file=sys.stderr)
    finally:
        stop.set()
        if loader:
            loader.join(timeout=5)
    n = args.seeds
    print(f"A/A calibration over {n} seeds ({time.perf_counter() - t0:.0f} s{', under load' if args.load else ''}): "
          f"false passes {false_pass}/{n}, false rollbacks {false_rollback}/{n} "
          f"(unpaired medians against the latency target would have passed {old_pass}/{n})")
    return 0 if false_pass == 0 and false_rollback == 0 else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
