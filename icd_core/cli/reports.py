"""``icd report RUN`` (re-render) and ``icd compare RUN_A RUN_B`` (side-by-side diff)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from icd_core.cli.tables import render_table


def _open_run(path: str):
    from icd_core.report.finished import load_run

    return load_run(Path(path))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "formats", multiple=True, help="Only these reporters (default: all).")
def report(run_dir: str, formats: tuple[str, ...]) -> None:
    """Re-render the reports of a finished run from its metrics.json and events.jsonl."""
    import attrs
    from filelock import Timeout

    from icd_core.config.converter import structure
    from icd_core.config.files import read_file
    from icd_core.config.schema import Config
    from icd_core.contract.errors import (
        ArtifactWriteError,
        RunDirectoryError,
        UsageError,
    )
    from icd_core.plugin import dispatch
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.run.artifacts import ArtifactDir, lock_existing_run
    from icd_core.run.context import RunContext

    path = Path(run_dir)
    record = _open_run(run_dir)
    config_file = path / "config.json"
    config = structure(read_file(config_file), Config, where=str(config_file)) if config_file.is_file() else Config()
    if formats:
        config = attrs.evolve(config, report=attrs.evolve(config.report, formats=list(formats)))
    manager = load_plugin_manager()
    ctx = RunContext(config=config, registry=manager.registry, run_dir=ArtifactDir(path))
    try:
        with lock_existing_run(path):
            written, failure = dispatch.report(manager, ctx, record)
    except Timeout:
        raise RunDirectoryError(f"{path}: locked by another icd process") from None
    for name in written:
        click.echo(str(path / name))
    if failure:
        raise ArtifactWriteError(failure)
    if not written:
        raise UsageError(f"{path}: no report written (report.formats selects none of the installed reporters)")


@click.command()
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Where to write compare.json / compare.csv "
              "(default: <out_dir>/compare-<A>-vs-<B>).")
def compare(run_a: str, run_b: str, out: str | None) -> None:
    """Print and write the side-by-side diff of two runs' final results."""
    from icd_core.report.cells import fmt
    from icd_core.report.compare import diff_runs
    from icd_core.report.jsonify import dumps
    from icd_core.run.artifacts import ArtifactDir

    a, b = _open_run(run_a), _open_run(run_b)
    diff = diff_runs(a, b)
    headers = ["metric", f"A {diff['a']['name']} ({diff['a']['branch']})",
               f"B {diff['b']['name']} ({diff['b']['branch']})", "B-A", "B/A", "change % (95 % CI)"]
    rows = [[r["metric"], fmt(r["a"]), fmt(r["b"]), fmt(r["delta"]), fmt(r["ratio"]),
             f"{r['change_pct']:+.3g} [{r['ci95_pct'][0]:+.3g}, {r['ci95_pct'][1]:+.3g}] ({r['basis']})"
             if "change_pct" in r else ""] for r in diff["rows"]]
    click.echo(render_table(headers, rows))
    for warning in diff["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    target = Path(out) if out else Path(run_a).parent / f"compare-{Path(run_a).name}-vs-{Path(run_b).name}"
    directory = ArtifactDir(target)
    directory.write_text("compare.json", dumps(diff) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", "a", "b", "delta", "ratio", "source_a", "source_b"])
    for r in diff["rows"]:
        writer.writerow([r[k] if r[k] is not None else "" for k in
                         ("metric", "a", "b", "delta", "ratio", "source_a", "source_b")])
    directory.write_text("compare.csv", buf.getvalue())
    click.echo(f"written: {target / 'compare.json'}, {target / 'compare.csv'}")
