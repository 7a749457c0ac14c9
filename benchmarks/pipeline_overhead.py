"""Event-bus overhead and report-generation time on the default run (`make run`).

Targets (issue 2): event bus < 1 % of run time; report generation < 5 s.
Runs the default job (solver spectral, adapter sparsity:2:4, mock workload) several times in
one process and prints each figure beside its target with the ratio value/target.

    .venv/bin/python benchmarks/pipeline_overhead.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from icd_core.cli.launch import launch_committed
from icd_core.config.files import load_config
from icd_core.plugin import dispatch
from icd_core.plugin.manager import load_plugin_manager
from icd_core.report.finished import load_run
from icd_core.run.artifacts import ArtifactDir, RunDirectory
from icd_core.run.context import RunContext
from icd_core.run.selection import select

DEFAULT_JOB = {"solver.name": "spectral", "transform.adapters": ["sparsity:2:4"]}


def one_run(manager, out_dir: Path, name: str) -> dict[str, float]:
    selection = select(load_config(cli={**DEFAULT_JOB, "report.out_dir": str(out_dir)}), manager.registry)
    outcome = launch_committed(manager, selection, RunDirectory(out_dir, name).open())
    path = outcome.path
    assert outcome.ok, outcome.error
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    report = next(e for e in events if e.get("stage") == "report")
    record = load_run(path)
    ctx = RunContext(config=selection.config, registry=manager.registry, run_dir=ArtifactDir(path))
    t0 = time.perf_counter()
    dispatch.report(manager, ctx, record)
    rerender = time.perf_counter() - t0
    m = outcome.record.metrics
    return {"run_s": m["run"]["duration_s"], "events": m["events"]["count"], "bus_s": m["events"]["overhead_s"],
            "bus_pct": m["events"]["overhead_pct"], "report_s": report["t_end"] - report["t_start"],
            "rerender_s": rerender}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    manager = load_plugin_manager()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_run(manager, Path(tmp), f"bench-{i}") for i in range(args.runs)]
    print(f"default run (spectral + sparsity:2:4 on the mock workload), {args.runs} runs\n")
    print(f"{'run':>4} {'run s':>8} {'events':>7} {'bus ms':>8} {'bus %':>7} {'report s':>9} {'re-render s':>12}")
    for i, r in enumerate(rows):
        print(f"{i:>4} {r['run_s']:8.3f} {r['events']:7d} {1e3 * r['bus_s']:8.3f} {r['bus_pct']:7.3f} "
              f"{r['report_s']:9.4f} {r['rerender_s']:12.4f}")
    bus = statistics.median(r["bus_pct"] for r in rows)
    report = max(max(r["report_s"], r["rerender_s"]) for r in rows)
    print()
    print(f"{'figure':<34} {'value':>10} {'target':>8} {'value/target':>13} verdict")
    for label, value, target in (("event-bus overhead, median % of run", bus, 1.0),
                                 ("report generation, worst s", report, 5.0)):
        print(f"{label:<34} {value:10.4f} {target:8.1f} {value / target:13.3f} {'meets' if value < target else 'MISSES'}")


if __name__ == "__main__":
    main()
