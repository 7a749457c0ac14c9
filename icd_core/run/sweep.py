"""``icd sweep``: many runs from one spec — a grid of dotted config keys × seeds over a base
config — each trial one ``icd run`` in its own process, resumable from a manifest.

The spec (YAML, JSON or TOML)::

    base: {workload: mock, solver: {name: spectral}}   # any icd config
    grid:                                              # dotted keys -> values (cartesian product)
      transform.sparsity: ["2:4", "1:4"]
      pipeline.mode: [linear, iterative]
    seeds: [0, 1]

Every trial's config is validated (and its components resolved) before anything runs. The
manifest ``sweep.json`` holds each trial's parameters, version tag (a digest of its effective
config and of the installed core and plugins) and state; a finished trial with the same tag
is skipped, a failed one retried; ``.sweep.lock`` refuses a second sweep on the directory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from icd_core.config.files import config_to_dict, load_config, parse_override, read_file
from icd_core.contract.errors import ConfigError, IcdError
from icd_core.contract.jsonify import dumps
from icd_core.contract.limits import limit, read_text
from icd_core.run.artifacts import write_text_atomic
from icd_core.run.privacy import redact

SPEC_KEYS = ("base", "grid", "seeds")
MANIFEST = "sweep.json"


@attrs.frozen
class Trial:
    """One run of the sweep: its name (from its parameters), the parameters, the effective
    config and the version tag that says whether a finished run is still this trial."""

    name: str
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    tag: str


@attrs.frozen
class SweepSpec:
    base: Mapping[str, Any]
    grid: Mapping[str, tuple[Any, ...]]
    seeds: tuple[int, ...] | None
    where: str


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def load_spec(path: str | Path, grid_args: tuple[str, ...] = (), set_args: tuple[str, ...] = ()) -> SweepSpec:
    """The spec file plus ``--grid key=v1,v2`` axes and ``--set key=value`` base overrides."""
    where = str(path)
    data = read_file(path)
    if not isinstance(data, dict):
        raise _fail(where, "expected a table with base, grid and seeds")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (expected one of: {', '.join(SPEC_KEYS)})")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise _fail(where, f"base: expected a table (an icd config), got {type(base).__name__}")
    for text in set_args:
        key, value = parse_override(text)
        base = {**base, key: value}
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise _fail(where, f"grid: expected a table of dotted keys to lists, got {type(grid).__name__}")
    grid = dict(grid)
    for text in grid_args:
        key, raw = (text.split("=", 1) + [""])[:2] if "=" in text else (text, None)
        if raw is None or not key.strip():
            raise _fail("--grid", f"{text}: expected key.path=v1,v2")
        grid[key.strip()] = [parse_override(f"x={v}")[1] for v in raw.split(",")]
    for key, values in grid.items():
        if not isinstance(values, list):
            raise _fail(where, f"grid.{key}: expected a list of values, got {values!r}")
        if not values:
            raise _fail(where, f"grid.{key}: empty list (a grid axis needs at least one value)")
    seeds = data.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise _fail(where, f"seeds: expected a non-empty list of integers, got {seeds!r}")
    if not grid and seeds is None:
        raise _fail(where, "grid: empty (give at least one grid axis or a list of seeds)")
    return SweepSpec(base=base, grid={k: tuple(v) for k, v in grid.items()},
                     seeds=tuple(seeds) if seeds is not None else None, where=where)


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


def trial_name(params: Mapping[str, Any]) -> str:
    """``sparsity-2-4_mode-linear_seed-0``: the last part of each key and its value, plus a
    short digest of the exact parameters (two values that read alike stay apart)."""
    parts = [f"{key.rsplit('.', 1)[-1]}-{_slug(value)}" for key, value in params.items()]
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return ("_".join(parts) or "base")[:120] + f"_{digest}"


def plan(spec: SweepSpec, registry: Any, versions: Mapping[str, str]) -> list[Trial]:
    """Every trial, each config validated and its components resolved; the first bad one
    raises one line naming the trial and the dotted path."""
    from icd_core.run.selection import select

    axes = list(spec.grid.items())
    seeds = spec.seeds if spec.seeds is not None else (None,)
    count = math.prod(len(values) for _, values in axes) * len(seeds)
    if count > limit("trials"):
        raise _fail(spec.where, f"the grid plans {count:,} trials, over the limit of {limit('trials'):,} "
                                f"(ICD_LIMIT_TRIALS); split the sweep")
    combos = itertools.product(*(values for _, values in axes)) if axes else [()]
    trials = []
    for combo in combos:
        for seed in seeds:
            params = {key: value for (key, _), value in zip(axes, combo)}
            if seed is not None:
                params["seed"] = seed
            name = trial_name(params)
            try:
                config = load_config(cli={**spec.base, **params})
                select(config, registry)
            except IcdError as exc:
                raise _fail(spec.where, f"trial {name}: {exc}") from None
            effective = config_to_dict(config)
            tag = hashlib.sha256(dumps({"config": effective, "versions": dict(versions)}).encode()).hexdigest()[:16]
            trials.append(Trial(name=name, params=params, config=effective, tag=tag))
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        raise _fail(spec.where, "two trials have the same parameters (a grid value is repeated)")
    return trials


def finished(run: Path) -> bool:
    """Whether ``run`` holds a complete, successful run (its metrics.json says so)."""
    try:
        return json.loads(read_text(run / "metrics.json", "metrics file", "json_bytes"))["run"]["ok"] is True
    except (IcdError, ValueError, KeyError, TypeError, RecursionError):
        return False


@attrs.define
class Manifest:
    """``sweep.json``: the sweep's trials and their states, rewritten atomically on every change."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, directory: Path, name: str, spec: SweepSpec, trials: list[Trial], force: bool = False) -> Manifest:
        """The manifest of ``directory`` brought up to date with ``trials``: a trial keeps its
        state only when its tag is unchanged; one that finished after the sweep was killed
        (its run is complete, the manifest did not hear of it) counts as done; a finished run
        of another config under a trial's name is refused, never overwritten; so is a manifest
        of another spec (base, grid or seeds), unless ``force``."""
        path = directory / MANIFEST
        old = {}
        shape = {"base": dict(spec.base), "grid": {k: list(v) for k, v in spec.grid.items()},
                 "seeds": list(spec.seeds) if spec.seeds is not None else None}
        if path.exists() or path.is_symlink():
            try:
                recorded = json.loads(read_text(path, "sweep manifest", "json_bytes"))
                old = {t["name"]: t for t in recorded["trials"]}
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise IcdError(f"{path}: not a sweep manifest ({exc}); move it away to start over") from None
            then, now = json.loads(dumps({k: recorded.get(k) for k in shape})), json.loads(dumps(shape))
            if then != now and not force:
                changed = next(k for k in shape if then[k] != now[k])
                raise IcdError(f"sweep {name}: {path} belongs to another spec ({changed} differs); use another "
                               f"--name, or --force to replace its manifest")
        entries = []
        for trial in trials:
            before = old.get(trial.name, {})
            same = before.get("tag") == trial.tag
            done = finished(directory / trial.name)
            if done and not same:
                raise IcdError(f"sweep {name}: {directory / trial.name} holds a finished run of another config "
                               f"(tag {before.get('tag') or 'unknown'}, now {trial.tag}); use another --name "
                               f"or move it away")
            if done and same:
                before = {**before, "state": "done"}
            entries.append({"name": trial.name, "params": dict(trial.params), "tag": trial.tag,
                            "state": before.get("state", "pending") if same else "pending",
                            "attempts": before.get("attempts", 0) if same else 0,
                            "error": before.get("error") if same else None,
                            "seconds": before.get("seconds") if same else None,
                            "run_dir": trial.name})
        manifest = cls(path, {"name": name, "spec": spec.where, **shape, "trials": entries})
        manifest.save()
        return manifest

    def entry(self, name: str) -> dict[str, Any]:
        return next(t for t in self.data["trials"] if t["name"] == name)

    def update(self, name: str, **fields: Any) -> None:
        self.entry(name).update(fields)
        self.save()

    def save(self) -> None:
        write_text_atomic(self.path, redact(dumps(self.data), json_text=True) + "\n")
