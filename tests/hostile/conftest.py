"""Hostile-input helpers: the real CLI under an address-space limit, its time and peak memory
measured per process (``os.wait4``), and a plugin planted through a ``.dist-info`` directory
on ``PYTHONPATH`` (no install), its behaviour chosen by ``HOSTILE_MODE``."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import pytest

ICD = [sys.executable, "-m", "icd_core.cli"]
MEMORY_LIMIT = 2 << 30  # address space of one CLI process: 2 GiB (the CLI itself maps < 1 GiB)


@attrs.frozen
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def error(self) -> str:
        """The one error line (asserting there is exactly one)."""
        errors = [line for line in self.lines if line.startswith("icd: ")]
        assert len(errors) == 1, self.stderr
        return errors[0]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_icd(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 60) -> Outcome:
    """The CLI in its own process with at most 2 GiB of address space and ``timeout`` seconds."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        process = subprocess.Popen([*ICD, *args], stdout=out, stderr=err, env={**os.environ, **(env or {})},
                                   cwd=cwd, preexec_fn=_limits)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                pytest.fail(f"icd {' '.join(args)} ran past {timeout} s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Outcome(process.returncode, out.read(), err.read(), time.perf_counter() - t0, usage.ru_maxrss / 1024)


PLUGIN = '''
import os, time
import pluggy
hookimpl = pluggy.HookimplMarker("icd")
MODE = os.environ.get("HOSTILE_MODE", "")

@hookimpl
def icd_register(registry):
    if MODE == "sleep_register":
        time.sleep(3600)
    registry.add("adapter", "hostile", summary="misbehaves on purpose")

@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    if adapter.name != "hostile":
        return None
    if MODE == "sleep_adapter":
        time.sleep(3600)
    if MODE == "exit_adapter":
        raise SystemExit(0)
    raise RuntimeError("unreachable")
'''


@pytest.fixture(scope="session")
def hostile_plugin(tmp_path_factory) -> dict[str, str]:
    """Environment that installs the hostile plugin (entry point ``hostile`` in group icd)."""
    site = tmp_path_factory.mktemp("hostile-site")
    (site / "icd_hostile.py").write_text(PLUGIN)
    info = site / "icd_hostile-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: icd-hostile\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[icd]\nhostile = icd_hostile\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
