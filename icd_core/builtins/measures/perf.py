"""Built-in measure ``perf`` (opt-in, CPU): hardware cache counters through ``perf stat``.

``perf stat -x, -e cache-references,cache-misses -p <this process>`` is attached while the
forward runs ``repeats`` times, then stopped; the counters cover the whole process for that
window (labelled ``measured:perf``). Many VMs expose no counters (``<not supported>``): the
figure is then null with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from icd_core.contract.hookmarkers import hookimpl
from icd_core.contract.records import Figure

NAME = "perf"
SOURCE = "measured:perf"
EVENTS = ("cache-references", "cache-misses")


def unavailable() -> str | None:
    if shutil.which("perf") is None:
        return "perf (linux-perf) is not installed"
    done = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "true"], capture_output=True, text=True)
    if done.returncode != 0 or "<not supported>" in done.stderr or "<not counted>" in done.stderr:
        return "perf reads no hardware cache counters here (<not supported>: common in VMs)"
    return None


def parse(stderr: str) -> dict[str, float | None]:
    """``perf stat -x,`` lines (value,unit,event,…) → {event: value or None}."""
    out: dict[str, float | None] = {}
    for line in stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2] in EVENTS:
            try:
                out[parts[2]] = float(parts[0])
            except ValueError:
                out[parts[2]] = None  # <not supported> / <not counted>
    return out


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="opt-in: hardware cache-misses / cache-references via perf stat",
                 check=unavailable, provides=("cache_miss_pct",), opt_in=True)


@hookimpl
def icd_measure(ctx, measure, state):
    state.run()
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-p", str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)  # let perf attach
    repeats = ctx.config.pipeline.repeats or 10
    for _ in range(repeats):
        state.run()
    perf.send_signal(signal.SIGINT)
    _, stderr = perf.communicate(timeout=30)
    counts = parse(stderr)
    refs, misses = counts.get("cache-references"), counts.get("cache-misses")
    if not refs or misses is None:
        return {"cache_miss_pct": Figure.missing(f"perf counted nothing usable ({counts})", "%")}
    detail = {"cache_references": refs, "cache_misses": misses, "forwards": repeats,
              "scope": "whole process while the forwards ran"}
    return {"cache_miss_pct": Figure(100.0 * misses / refs, SOURCE, unit="%", detail=detail)}
