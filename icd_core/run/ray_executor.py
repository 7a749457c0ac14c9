"""The ``ray`` sweep executor: each trial a Ray task with its CPU request (and one GPU when
its workload runs on CUDA).

``--address auto`` or ``ray://host:port`` joins an existing cluster; with no address a local
Ray instance with ``--workers`` CPUs is started (and stopped after the sweep). Artifacts come
back to the driver: the task runs the trial through the launcher ``icd run`` uses (passed in by
the CLI: this room never imports it) into a temporary directory on its node, returns the run
directory as a tar archive, and the driver unpacks it into ``OUT_DIR/NAME/<trial>/``
(staged, then renamed) — so nodes need no shared filesystem, only the same ``icd-co`` and
plugin versions installed (a trial whose node differs gets another version tag in its
metrics.json). Ray is an optional extra: ``pip install "icd-co[ray]"``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from icd_core.contract.errors import UsageError
from icd_core.run.executors import TrialOutcome


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError('--executor ray: Ray is not installed (pip install "icd-co[ray]")') from None
    return ray


Launch = Callable[[Path, str, Path], "str | None"]
"""How a trial runs in a worker: (sweep directory, trial name, config file) → its error line or
``None`` (the CLI passes :func:`icd_core.cli.launch.run_trial`, the launcher ``icd run`` uses)."""


def _run_in_worker(sweep_dir: Path, name: str, config: dict[str, Any], launch: Launch) -> TrialOutcome:
    """The trial inside this Ray worker process (Ray reuses workers: the imports are paid once
    per worker, not per trial)."""
    from icd_core.contract.jsonify import dumps
    from icd_core.run.artifacts import write_text_atomic

    config_path = sweep_dir / ".trials" / f"{name}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config_path, dumps(config) + "\n")
    t0 = time.perf_counter()
    error = launch(sweep_dir, name, config_path)
    seconds = time.perf_counter() - t0
    if error is None and (sweep_dir / name / "metrics.json").is_file():
        return TrialOutcome(name, True, seconds)
    return TrialOutcome(name, False, seconds, error or "the run wrote no metrics.json")


def trial_task(name: str, config: dict[str, Any], launch: Launch) -> tuple[TrialOutcome, bytes]:
    """Run one trial on whichever node Ray chose; the outcome and the run directory (tar)."""
    with tempfile.TemporaryDirectory(prefix="icd-trial-") as tmp:
        outcome = _run_in_worker(Path(tmp), name, config, launch)
        buffer = io.BytesIO()
        run = Path(tmp) / name
        if run.is_dir():
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                archive.add(run, arcname=name)
        return outcome, buffer.getvalue()


def _unpack(sweep_dir: Path, name: str, payload: bytes) -> None:
    """The trial's run directory, in place atomically (a previous failed attempt replaced)."""
    if not payload:
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.unpack-", dir=sweep_dir))
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r") as archive:
            archive.extractall(staging, filter="data")
        target = sweep_dir / name
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def gpus_of(config: dict[str, Any]) -> int:
    """The GPUs a trial asks Ray for: one when its workload runs on CUDA (``device=cuda``)."""
    import json

    return 1 if "cuda" in json.dumps(config.get("workload")) else 0


def run_ray(sweep_dir: Path, trials: Iterable[tuple[str, dict[str, Any], bool]], workers: int, retries: int,
            on_done: Callable[[TrialOutcome], None], launch: Launch, address: str | None = None,
            trial_cpus: int = 1, backoff_s: float = 0.5) -> dict[str, Any]:
    """Run the trials as Ray tasks (at most ``workers`` at a time on a local instance), each
    through ``launch``; each failure resubmitted up to ``retries`` times with exponential
    backoff. Returns what Ray ran on (address, CPUs)."""
    ray = _ray()
    local = address is None
    if local:
        ray.init(num_cpus=workers * trial_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # a local instance's workers inherit this environment
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    remote = ray.remote(num_cpus=trial_cpus, max_retries=0)(trial_task)
    info = {"address": address or "local", "cpus": ray.cluster_resources().get("CPU")}
    attempts: dict[str, int] = {}
    pending: dict[Any, tuple[str, dict[str, Any]]] = {}
    try:
        for name, config, _force in trials:
            attempts[name] = 1
            pending[remote.options(num_gpus=gpus_of(config)).remote(name, config, launch)] = (name, config)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name, config = pending.pop(ready[0])
            try:
                outcome, payload = ray.get(ready[0])
            except Exception as exc:  # the task itself died (node lost, worker killed)
                outcome, payload = TrialOutcome(name, False, 0.0, f"ray task failed: {type(exc).__name__}: {exc}"), b""
            _unpack(sweep_dir, name, payload)
            if not outcome.ok and attempts[name] <= retries:
                time.sleep(backoff_s * 2 ** (attempts[name] - 1))
                attempts[name] += 1
                pending[remote.options(num_gpus=gpus_of(config)).remote(name, config, launch)] = (name, config)
                continue
            on_done(attrs.evolve(outcome, attempts=attempts[name]))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()
    return info
