"""``icd bridge RUN --to TARGET --out DIR``: carry a finished run's layout into a compiler."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "target", required=True, help="The bridge, e.g. tvm (icd plugins list shows them).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="An empty or new directory.")
def bridge(run_dir: str, target: str, out: str) -> None:
    """Export RUN_DIR's workload, attach its layout (π₀ / π₁, blocks, constraints, version tag)
    as IR attributes, apply it in a compiler pass, build, run and compare; write DIR/bridge.json."""


    from icd_core.config.schema import Config
    from icd_core.contract.errors import InputDataError, UsageError
    from icd_core.contract.jsonify import dumps
    from icd_core.plugin import dispatch
    from icd_core.plugin.manager import load_plugin_manager
    from icd_core.plugin.specs import resolve
    from icd_core.run.artifacts import write_text_atomic
    from icd_core.run.context import RunContext

    run = Path(run_dir)
    for needed in ("config.json", "perm.json", "metrics.json"):
        if not (run / needed).is_file():
            raise InputDataError(f"{run}: not a finished icd run (no {needed})")
    destination = Path(out)
    if destination.exists() and any(destination.iterdir()):
        raise UsageError(f"--out {destination}: not empty (nothing was written)")
    manager = load_plugin_manager()
    spec = resolve(manager.registry, "bridge", target)
    reason = manager.registry.get("bridge", spec.name).unavailable_reason()
    if reason:
        raise UsageError(f"--to {target}: unavailable here: {reason}")
    ctx = RunContext(config=Config(), registry=manager.registry)
    staging = destination.parent / f".{destination.name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        record = dict(dispatch.bridge(manager, ctx, spec, run, staging))
        write_text_atomic(staging / "bridge.json", dumps(record) + "\n")
        if destination.exists():
            destination.rmdir()
        staging.rename(destination)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    eq = record.get("equivalence", {})
    click.echo(f"{target}: module and bridge.json in {destination}; round trip "
               f"{'ok' if record.get('roundtrip') else 'FAILED'}; max relative difference vs PyTorch "
               f"{eq.get('max_rel_diff', float('nan')):.2e}; check pass: {record.get('check', {}).get('status')}")
    if not record.get("roundtrip") or record.get("check", {}).get("status") != "ok":
        raise SystemExit(1)

