"""``icd solve W.npz``: lay out a stored matrix with any solver, without a model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click


@click.command()
@click.argument("matrix", type=click.Path(dir_okay=False))
@click.option("--solver", default="auto", show_default=True, help="Solver spec (auto: spectral if installed).")
@click.option("--block", type=int, help="Cache-line block g in elements (default 16: 64 B of fp32).")
@click.option("--time-budget", type=float, help="Seconds the solver may take (default 30).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--constraints", "constraints_path", type=click.Path(dir_okay=False),
              help='JSON: {"supernode": 4, "fixed": [0, 7]} (super-node indices).')
@click.option("--group", help="Which matrix of an icd W.npz holding several groups.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write perm.json.")
def solve(matrix: str, solver: str, block: int | None, time_budget: float | None, seed: int,
          constraints_path: str | None, group: str | None, out: str) -> None:
    """Solve a stored W (scipy save_npz or an icd W.npz); print the stats as one JSON line."""
    from icd_core.config.converter import structure
    from icd_core.config.files import load_config, read_file
    from icd_core.contract.errors import ConfigError, UsageError
    from icd_core.contract.records import Constraints, GraphW
    from icd_core.layout.graphs import prepare_user_w
    from icd_core.plugin import dispatch
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.report.jsonify import dumps
    from icd_core.run.artifacts import load_w, write_text_atomic
    from icd_core.run.context import RunContext
    from icd_core.run.selection import select

    settings = {"solver.name": solver, "seed": seed}
    if block is not None:
        settings["solver.block"] = block
    if time_budget is not None:
        settings["solver.time_budget_s"] = time_budget
    config = load_config(cli=settings)
    manager = load_plugin_manager()
    selection = select(config, manager.registry)
    matrices = load_w(matrix)
    if group is None and len(matrices) > 1:
        raise UsageError(f"{matrix}: holds groups {sorted(matrices)}; choose one with --group")
    name = group or next(iter(matrices))
    if name not in matrices:
        raise UsageError(f"{matrix}: no group {name!r} (has {', '.join(sorted(matrices))})")
    g = RunContext(config=selection.config, registry=manager.registry).block_size()
    w, notes = prepare_user_w(matrices[name], matrix, g)
    constraints = Constraints()
    if constraints_path:
        constraints = structure(read_file(constraints_path), Constraints, where=constraints_path)
        if w.shape[0] % constraints.supernode:
            raise ConfigError(f"{constraints_path}: supernode {constraints.supernode} does not divide n = {w.shape[0]}")
        count = w.shape[0] // constraints.supernode
        outside = [f for f in constraints.fixed if not 0 <= f < count]
        if outside:
            raise ConfigError(f"{constraints_path}: fixed: super-node {outside[0]} out of range 0..{count - 1}")
    ctx = RunContext(config=selection.config, registry=manager.registry)
    fit = dispatch.fit_permutation(manager, ctx, selection.solver, GraphW(matrix=w, meta={"source": "file"}, block=g),
                                constraints)
    digest = hashlib.sha256(Path(matrix).read_bytes()).hexdigest()
    doc = {"perm": fit.perm, "solver": selection.solver.text, "block": g, "seed": seed, "stats": fit.stats,
           "notes": notes, "input": {"path": matrix, "group": name, "sha256": digest, "n": int(w.shape[0]),
                                     "nnz": int(w.nnz)}}
    write_text_atomic(Path(out), dumps(doc, indent=None) + "\n")
    click.echo(dumps({"solver": selection.solver.text, "n": int(w.shape[0]), "block": g, **fit.stats,
                      "notes": notes, "out": out}, indent=None))
