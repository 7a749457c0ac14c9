"""Where sweep trials run. ``local``: a pool of worker threads, each starting one ``icd run``
process per trial, every process pinned to its own share of the cores (CPU affinity and
``OMP_NUM_THREADS``), so that trials do not oversubscribe the machine.

A trial is one function call, :func:`run_trial`: it writes the trial's config beside the
sweep (``.trials/``), runs ``icd run -c CONFIG --out-dir SWEEP --name TRIAL`` and reports the
outcome. The
run directory is written by the trial itself, atomically (``icd run`` stages it), so a killed
trial leaves no half-written run behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs

from icd_core.contract.children import die_with_parent, python_command
from icd_core.contract.jsonify import dumps
from icd_core.run.artifacts import write_text_atomic
from icd_core.run.privacy import redact
from icd_core.run.timing import available_cores


@attrs.frozen
class TrialOutcome:
    name: str
    ok: bool
    seconds: float
    error: str | None = None
    attempts: int = 1


def core_shares(workers: int) -> list[list[int]]:
    """The cores split into ``workers`` disjoint shares (round robin; a share is never empty)."""
    cores = available_cores()
    workers = max(1, min(workers, len(cores)))
    return [cores[i::workers] for i in range(workers)]


def error_line(stderr: str, code: int) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("icd: error:"):
            return line.removeprefix("icd: error:").strip()
    return (lines[-1].strip() if lines else "") or f"icd run exited {code}"


def _child_setup(cores: list[int]) -> None:
    """In a trial process before it starts: run on its share of the cores, and die with the
    sweep (Linux: PR_SET_PDEATHSIG), so a killed sweep leaves no trial running unseen."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    die_with_parent()


class TrialProcesses:
    """The trial processes under way, so that an interrupt can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, cmd: list[str], env: dict[str, str], cores: list[int]) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise KeyboardInterrupt
            process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                                       preexec_fn=lambda: _child_setup(cores))
            self._running.add(process)
            return process

    def done(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(process)

    def stop_all(self) -> None:
        with self._lock:
            self.stopping = True
            for process in self._running:
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
        for process in list(self._running):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGINT (the run writes what it has), then SIGKILL after ``grace_s``."""
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def run_trial(sweep_dir: Path, name: str, config: dict[str, Any], cores: list[int], processes: TrialProcesses,
              force: bool = False, timeout_s: float | None = None) -> TrialOutcome:
    """One ``icd run`` process of a trial's config into ``sweep_dir/name``, on ``cores``; one
    that runs past ``timeout_s`` is interrupted (then killed) and fails."""
    record = sweep_dir / ".trials" / f"{name}.json"  # what the trial ran, secrets redacted
    record.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, redact(dumps(config), json_text=True) + "\n")
    config_path = record.parent / f".{name}.{os.getpid()}.{threading.get_ident()}.json"  # the real one, private
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dumps(config) + "\n")
    try:
        return _run_trial_process(sweep_dir, name, config_path, cores, processes, force, timeout_s)
    finally:
        config_path.unlink(missing_ok=True)


def _run_trial_process(sweep_dir: Path, name: str, config_path: Path, cores: list[int], processes: TrialProcesses,
                       force: bool, timeout_s: float | None) -> TrialOutcome:
    cmd = [*python_command("-m", "icd_core.cli"), "run", "-c", str(config_path), "--out-dir", str(sweep_dir),
           "--name", name, *(["--force"] if force else [])]
    threads = str(len(cores))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    t0 = time.perf_counter()
    process = processes.start(cmd, env, cores)
    try:
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop(process)
            processes.done(process)
            return TrialOutcome(name, False, time.perf_counter() - t0, f"timed out after {timeout_s:g} s (stopped)")
        code = process.returncode
    finally:
        processes.done(process)
    seconds = time.perf_counter() - t0
    if code == 0 and (sweep_dir / name / "metrics.json").is_file():
        return TrialOutcome(name, True, seconds)
    return TrialOutcome(name, False, seconds, error_line(stderr, code))


def run_local(sweep_dir: Path, trials: Iterable[tuple[str, dict[str, Any], bool]], workers: int,
              retries: int, on_done: Callable[[TrialOutcome], None], backoff_s: float = 0.5,
              timeout_s: float | None = None) -> None:
    """Run ``(name, config, force)`` trials ``workers`` at a time, each failure retried up to
    ``retries`` times with exponential backoff; ``on_done`` is called in this thread, once per
    trial, with its final outcome. Ctrl-C stops every running trial and re-raises."""
    shares = core_shares(workers)
    free = list(range(len(shares)))
    free_lock = threading.Lock()
    processes = TrialProcesses()

    def attempt(name: str, config: dict[str, Any], force: bool) -> TrialOutcome:
        with free_lock:
            slot = free.pop()
        try:
            outcome = None
            for attempt_no in range(retries + 1):
                if attempt_no:
                    time.sleep(backoff_s * 2 ** (attempt_no - 1))
                outcome = run_trial(sweep_dir, name, config, shares[slot], processes, force=force or attempt_no > 0,
                                    timeout_s=timeout_s)
                if outcome.ok:
                    break
            return attrs.evolve(outcome, attempts=attempt_no + 1)
        finally:
            with free_lock:
                free.append(slot)

    pool = ThreadPoolExecutor(max_workers=len(shares))
    futures: list = []
    try:
        futures = [pool.submit(attempt, *t) for t in trials]
        for future in as_completed(futures):
            on_done(future.result())
    except KeyboardInterrupt:
        processes.stop_all()
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
