"""``icd report RUN`` (re-render) and ``icd compare RUN_A RUN_B`` (side-by-side diff)."""

from __future__ import annotations

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

    from icd_core.config.files import read_file
    from icd_core.config.schema import Config
    from icd_core.contract.converter import structure
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
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Where to write compare.html / compare.json / "
              "compare.csv (default: <out_dir>/compare-<A>-vs-<B>…).")
def compare(runs: tuple[str, ...], out: str | None) -> None:
    """The verdict cards and figures of two or more runs side by side, and each run's final
    results against the first's (console, compare.html, compare.json, compare.csv)."""
    from icd_core.builtins.reporters import render_compare_html
    from icd_core.cli.tables import card_lines
    from icd_core.contract.errors import UsageError
    from icd_core.contract.jsonify import dumps
    from icd_core.report.card import verdict_card
    from icd_core.report.cells import csv_text, fmt
    from icd_core.report.compare import diff_runs
    from icd_core.run.artifacts import ArtifactDir

    if len(runs) < 2:
        raise UsageError("icd compare: give at least two run directories")
    finished = [_open_run(r) for r in runs]
    diffs = [diff_runs(finished[0], other) for other in finished[1:]]
    for run in finished:
        click.echo(f"== {run.metrics['run']['name']}")
        for line in card_lines(verdict_card(run.metrics)):
            click.echo(line)
        click.echo()
    for diff in diffs:
        headers = ["metric", f"A {diff['a']['name']} ({diff['a']['branch']})",
                   f"B {diff['b']['name']} ({diff['b']['branch']})", "B-A", "B/A", "change % (95 % CI)"]
        rows = [[r["metric"], fmt(r["a"]), fmt(r["b"]), fmt(r["delta"]), fmt(r["ratio"]),
                 f"{r['change_pct']:+.3g} [{r['ci95_pct'][0]:+.3g}, {r['ci95_pct'][1]:+.3g}] ({r['basis']})"
                 if "change_pct" in r else ""] for r in diff["rows"]]
        click.echo(render_table(headers, rows))
    warnings = list(dict.fromkeys(w for d in diffs for w in d["warnings"]))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    stem = "-vs-".join(Path(r).name for r in runs)
    target = Path(out) if out else Path(runs[0]).parent / f"compare-{stem}"
    directory = ArtifactDir(target)
    doc = {**diffs[0], "runs": [r.metrics["run"]["name"] for r in finished], "warnings": warnings, "diffs": diffs}
    directory.write_text("compare.json", dumps(doc) + "\n")
    header = ["a", "b", "metric", "value_a", "value_b", "delta", "ratio", "source_a", "source_b"]
    rows = [[diff["a"]["name"], diff["b"]["name"], *(r[k] if r[k] is not None else "" for k in
             ("metric", "a", "b", "delta", "ratio", "source_a", "source_b"))] for diff in diffs for r in diff["rows"]]
    directory.write_text("compare.csv", csv_text([header, *rows]))
    directory.write_text("compare.html", render_compare_html([r.metrics for r in finished], diffs, warnings))
    click.echo(f"written: {target / 'compare.html'}, {target / 'compare.json'}, {target / 'compare.csv'}")
