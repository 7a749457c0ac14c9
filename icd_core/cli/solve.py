"""``icd solve W.npz``: lay out a stored matrix with any solver, without a model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click


@click.command()
@click.argument("matrix", type=click.Path(dir_okay=False))
@click.option("--solver", default="auto", show_default=True, help="Solver spec (auto: the installed solver that prefers itself most).")
@click.option("--block", type=int, help="Cache-line block g in elements (default 16: 64 B of fp32).")
@click.option("--time-budget", type=float, help="Seconds the solver may take (default 30).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--constraints", "constraints_path", type=click.Path(dir_okay=False),
              help='JSON: {"supernode": 4, "fixed": [0, 7]} (super-node indices).')
@click.option("--group", help="Only this matrix of an icd W.npz holding several groups (default: every one).")
@click.option("--workers", type=int, help="Processes for several groups (default: the cores this process may use).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write perm.json.")
def solve(matrix: str, solver: str, block: int | None, time_budget: float | None, seed: int,
          constraints_path: str | None, group: str | None, workers: int | None, out: str) -> None:
    """Solve a stored W (scipy save_npz or an icd W.npz; several groups are solved together,
    in parallel); print one JSON line of stats per group."""
    from icd_core.config.files import load_config, read_file
    from icd_core.contract.converter import structure
    from icd_core.contract.errors import ConfigError, UsageError
    from icd_core.contract.jsonify import dumps
    from icd_core.contract.records import Constraints, GraphW
    from icd_core.layout.graphs import prepare_user_w
    from icd_core.plugin import dispatch
    from icd_core.plugin.manager import load_plugin_manager
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
    if group is not None and group not in matrices:
        raise UsageError(f"{matrix}: no group {group!r} (has {', '.join(sorted(matrices))})")
    names = [group] if group is not None else sorted(matrices)
    g = RunContext(config=selection.config, registry=manager.registry).block_size()
    prepared = {name: prepare_user_w(matrices[name], matrix if len(names) == 1 else f"{matrix}[{name}]", g)
                for name in names}
    constraints = Constraints()
    if constraints_path:
        constraints = structure(read_file(constraints_path), Constraints, where=constraints_path)
        for name, (w, _) in prepared.items():
            if w.shape[0] % constraints.supernode:
                raise ConfigError(f"{constraints_path}: supernode {constraints.supernode} does not divide n = "
                                  f"{w.shape[0]} (group {name})")
            count = w.shape[0] // constraints.supernode
            outside = [f for f in constraints.fixed if not 0 <= f < count]
            if outside:
                raise ConfigError(f"{constraints_path}: fixed: super-node {outside[0]} out of range 0..{count - 1}")
    ctx = RunContext(config=selection.config, registry=manager.registry)
    problems = [GraphW(matrix=w, meta={"source": "file", "group": name}, block=g) for name, (w, _) in prepared.items()]
    if len(problems) == 1:
        fits = [dispatch.fit_permutation(manager, ctx, selection.solver, problems[0], constraints)]
    else:
        from icd_core.run.batch import solve_many

        fits = solve_many(manager, ctx, selection.solver, problems, [constraints] * len(problems), workers)
    digest = hashlib.sha256(Path(matrix).read_bytes()).hexdigest()
    entries = {name: {"perm": fit.perm, "stats": fit.stats, "notes": prepared[name][1],
                      "n": int(prepared[name][0].shape[0]), "nnz": int(prepared[name][0].nnz)}
               for name, fit in zip(names, fits)}
    if len(names) == 1:
        name, entry = names[0], entries[names[0]]
        doc = {"perm": entry["perm"], "solver": selection.solver.text, "block": g, "seed": seed,
               "stats": entry["stats"], "notes": entry["notes"],
               "input": {"path": matrix, "group": name, "sha256": digest, "n": entry["n"], "nnz": entry["nnz"]}}
    else:
        doc = {"groups": entries, "solver": selection.solver.text, "block": g, "seed": seed,
               "input": {"path": matrix, "sha256": digest, "groups": names}}
    write_text_atomic(Path(out), dumps(doc, indent=None) + "\n")
    for name in names:
        entry = entries[name]
        click.echo(dumps({"solver": selection.solver.text, **({"group": name} if len(names) > 1 else {}),
                          "n": entry["n"], "block": g, **entry["stats"], "notes": entry["notes"], "out": out},
                         indent=None))
