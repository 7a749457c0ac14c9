"""``icd plugins list`` and ``icd plugins check``."""

from __future__ import annotations

import json
import sys

import click

from icd_core.cli.tables import render_table


@click.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "include_builtins", is_flag=True, help="Include the core's built-in components.")
def list_plugins(as_json: bool, include_builtins: bool) -> None:
    """Plugins with their distribution, version, components, hooks and status."""
    from icd_core.plugin.manager import load_plugin_manager

    manager = load_plugin_manager()
    rows = manager.list_rows(include_builtins=include_builtins)
    if as_json:
        components = {}
        for c in manager.registry:
            components.setdefault(c.provider, []).append(
                {"kind": c.kind, "name": c.name, "summary": c.summary, "positional": list(c.positional),
                 "status": c.status})
        out = []
        for row in rows:
            out.append({"name": row.name, "distribution": row.distribution, "version": row.version,
                        "builtin": row.builtin, "provides": row.provides, "hooks": row.hooks,
                        "status": row.status, "components": components.get(row.label, [])})
        click.echo(json.dumps(out, indent=2))
        return
    table = [[r.name, r.distribution, r.version, ", ".join(r.provides) or "-",
              ", ".join(h.removeprefix("icd_") for h in r.hooks) or "-", r.status] for r in rows]
    click.echo(render_table(["name", "distribution", "version", "provides", "hooks", "status"], table))


@plugins.command("check")
def check_plugins() -> None:
    """Load every plugin and check the contract; exits 1 on any failure."""
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.testing.conformance import findings

    manager = load_plugin_manager()
    failures = [f"{r.name} ({r.distribution}): {r.status}" for r in manager.failures()]
    notes: dict[str, list[str]] = {}
    for plugin in manager.pm.get_plugins():
        name = manager.pm.get_name(plugin) or repr(plugin)
        problems, notes[name] = findings(manager, plugin)
        failures.extend(f"{name}: {p}" for p in problems)
    for row in manager.list_rows(include_builtins=True):
        if not row.failed:
            note = "" if row.status == "ok" else f" — {row.status}"
            click.echo(f"ok    {row.name} ({row.distribution} {row.version}){note}")
            for line in notes.get(f"{row.distribution}:{row.name}", []):
                click.echo(f"      note: {line}")
    for failure in failures:
        click.echo(f"FAIL  {failure}")
    if failures:
        click.echo(f"{len(failures)} problem(s)", err=True)
        sys.exit(1)
    click.echo("all plugins keep the contract")


@plugins.command("new")
@click.argument("kind", type=click.Choice(["adapter", "measure", "solver", "graph"]))
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create icd-KIND-NAME/.")
def new_plugin(kind: str, name: str, directory: str) -> None:
    """Scaffold a plugin distribution icd-KIND-NAME/ that installs, is listed, passes
    `icd plugins check` and its own tests."""
    from pathlib import Path

    from icd_core.plugin.scaffold import scaffold

    root = scaffold(kind, name, Path(directory))
    click.echo(f"created {root}/ — install it with: pip install -e {root}  (then: icd plugins check; "
               f"pytest {root}/tests)")
