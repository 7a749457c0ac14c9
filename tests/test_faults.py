"""Faults end in one clear line or a recorded fallback — never a lost run, a half-written
artifact, or an exit 0 for work that did not happen."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess

import pytest

from icd_core.run import artifacts
from icd_core.run.artifacts import RunDirectory, clean_stale

from .conftest import ICD, icd, pythonpath, run_pipeline

FAST = ["--repeats", "3", "--set", "pipeline.warmup_iter=1", "--workload", "mock:hidden=128:tokens=32"]


def metrics_of(run):
    return json.loads((run / "metrics.json").read_text())


def test_an_adapter_mutating_its_input_fails_the_run_with_rollback_not_verified(thirdparty, tmp_path):
    env = pythonpath(thirdparty["icd-testkit"])
    done = icd("run", *FAST, "--adapter", "inplace", "--out-dir", str(tmp_path), "--name", "m", env=env)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("icd: error: run failed: ContractError: adapter 'inplace' modified the state it was given")
    assert "rollback NOT verified" in error
    m = metrics_of(tmp_path / "m")
    assert m["run"]["ok"] is False and m["rollback"]["verified"] is False
    assert "did NOT verify" in m["verdict"]
    assert "Rollback NOT verified" in (tmp_path / "m" / "report.html").read_text()
    perm = json.loads((tmp_path / "m" / "perm.json").read_text())
    assert perm["rolled_back"]["verified"] is False and perm["rolled_back"]["in_effect"].startswith("unknown")


def test_a_failing_undo_is_recorded_and_the_retained_state_restores(tmp_path):
    import numpy as np

    from icd_core import TransformMeta, TransformResult

    from .conftest import make_plugin

    def register(registry):
        registry.add("adapter", "badundo", summary="degrades quality; its undo raises")

    def transform(ctx, adapter, state, layout):
        if adapter.name != "badundo":
            return None
        w = state.tensors["mlp.fc2.weight"]
        noisy = w + np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype) * np.abs(w).mean() * 3
        meta = TransformMeta(adapter="badundo", spec=adapter.text)

        def undo(_state):
            raise RuntimeError("undo exploded")
        return TransformResult(state=state.with_transform({"mlp.fc2.weight": noisy}, meta), meta=meta, undo=undo)

    outcome, run = run_pipeline(tmp_path, make_plugin("bu", icd_register=register, icd_apply_transform=transform),
                                overrides={"transform.adapters": ["badundo"], "rollback.quality_pp": 0.5,
                                           "solver.name": "identity"})
    assert outcome.ok, outcome.error
    saved = json.loads((run / "rollback" / "rollback.json").read_text())
    assert saved["trigger"] == "regression" and saved["undone"] == ["pi0:mlp.hidden"]
    assert saved["undo_failures"] == ["transform:badundo: RuntimeError: undo exploded"]
    assert saved["verified"] is True and saved["how"].startswith("the retained pre-run state")


def test_a_reporter_failure_fails_the_run_and_nothing_claims_success(tmp_path, monkeypatch):
    real = artifacts.write_bytes_atomic

    def full_disk(path, data):
        if path.name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(artifacts, "write_bytes_atomic", full_disk)
    outcome, run = run_pipeline(tmp_path)
    assert not outcome.ok
    assert outcome.error.endswith(f"{run / 'report.html'}: cannot write (No space left on device)")
    m = metrics_of(run)
    assert m["run"]["ok"] is False and "report.html" in m["run"]["error"]
    assert not (run / "report.html").exists() and not (run / "report.csv").exists()


def _limit_file_size(size: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@pytest.mark.parametrize("limit", [3_000, 30_000])
def test_a_file_size_limit_gives_one_line_exit_1_and_no_run_claiming_success(tmp_path, limit):
    """A real OS-level write failure (RLIMIT_FSIZE: writes past it fail with EFBIG)."""
    runs = tmp_path / "runs"
    done = subprocess.run([*ICD, "run", *FAST, "--out-dir", str(runs), "--name", "f"], capture_output=True,
                          text=True, preexec_fn=_limit_file_size(limit), timeout=120)
    assert done.returncode == 1, done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot write (File too large)" in last and "Traceback" not in done.stderr
    for run in (p for p in runs.iterdir() if not p.name.startswith(".")):
        metrics = run / "metrics.json"
        assert not metrics.exists() or metrics_of(run)["run"]["ok"] is False


def test_a_corrupt_cache_entry_is_dropped_and_the_run_succeeds(tmp_path):
    first, _ = run_pipeline(tmp_path, name="a")
    entries = list((tmp_path / ".cache" / "perm").glob("*.json"))
    assert first.ok and len(entries) == 1
    entry = json.loads(entries[0].read_text())
    entry["perm"] = [0] * len(entry["perm"])  # duplicate indices: not a permutation
    entries[0].write_text(json.dumps(entry))
    second, run = run_pipeline(tmp_path, name="b")
    assert second.ok, second.error
    m = metrics_of(run)
    assert [f["cache"] for f in m["fits"]] == ["miss"]
    warnings = [json.loads(l)["message"] for l in (run / "events.jsonl").read_text().splitlines() if '"warning"' in l]
    assert any("dropped: not a permutation of 128 entries" in w for w in warnings)
    assert sorted(json.loads(entries[0].read_text())["perm"]) == list(range(128))  # rewritten whole


def test_a_cache_path_that_is_a_file_disables_the_cache_with_a_warning(tmp_path):
    (tmp_path / ".cache").write_text("not a directory")
    outcome, run = run_pipeline(tmp_path)
    assert outcome.ok, outcome.error
    events = (run / "events.jsonl").read_text()
    assert "permutation cache" in events and "running without it" in events


def test_two_processes_one_name_make_exactly_one_run_directory(tmp_path):
    runs = tmp_path / "runs"
    procs = [subprocess.Popen([*ICD, "run", *FAST, "--out-dir", str(runs), "--name", "same"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1).strip().splitlines()
    assert len(loser) == 1 and loser[0].startswith(f"icd: error: {runs / 'same'}: ")
    assert loser[0].endswith(("locked by another icd process",
                              "run directory exists (choose another --name or pass --force)"))
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == ["same"]
    assert metrics_of(runs / "same")["run"]["ok"] is True


def _run_dir(out, name, content, replace=False):
    run = RunDirectory(out, name, replace=replace).open()
    for file, text in content.items():
        run.write_text(file, text)
    return run


class Killed(BaseException):
    """Stands for SIGKILL at one point of a commit."""


OLD = {"metrics.json": "old", "report.html": "old report"}
NEW = {"metrics.json": "new", "report.html": "new report", "W.npz": "w"}


def _contents(path):
    return {p.name: p.read_text() for p in path.iterdir()}


@pytest.mark.parametrize("exchange", [True, False])
@pytest.mark.parametrize("kill_at", range(4))
def test_a_kill_during_force_leaves_the_old_or_the_new_run_whole(tmp_path, monkeypatch, exchange, kill_at):
    _run_dir(tmp_path, "r", OLD).commit()
    steps = {"n": 0}

    def step(real):
        def wrapped(*args, **kwargs):
            if steps["n"] == kill_at:
                raise Killed
            steps["n"] += 1
            return real(*args, **kwargs)
        return wrapped

    run = _run_dir(tmp_path, "r", NEW, replace=True)
    if not exchange:
        monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    else:
        monkeypatch.setattr(artifacts, "_exchange", step(artifacts._exchange))
    monkeypatch.setattr(artifacts.os, "replace", step(os.replace))
    monkeypatch.setattr(artifacts.shutil, "rmtree", step(artifacts.shutil.rmtree))
    try:
        run.commit()
    except Killed:
        run._lock.release()  # the process died: the OS drops its lock
    monkeypatch.undo()
    clean_stale(tmp_path)  # what the next icd process in this directory does first
    assert _contents(tmp_path / "r") in (OLD, NEW)
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name] == []


def test_stale_leftovers_of_other_names_are_cleaned_only_when_unlocked(tmp_path):
    dead = tmp_path / ".x.partial-999999"
    dead.mkdir()
    (tmp_path / ".y.old-999998").mkdir()
    busy = RunDirectory(tmp_path, "z").open()
    RunDirectory(tmp_path, "other").open().commit()
    names = {p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")}
    assert names == {"other", "y", busy.path.name}  # x's staging gone, y's orphaned old run restored
    busy.abandon()


@pytest.mark.parametrize("args,code,line", [
    (["--out-dir", "/proc/icd-nope"], 1, "icd: error: report.out_dir /proc/icd-nope: cannot create it"),
    (["--set", "transform.adapters=sparsity:2:4"], 2,
     "icd: error: --set: transform.adapters: expected a list, got a string ('sparsity:2:4'); write ['sparsity:2:4']"),
    (["--adapter", "sparsity:n=2:m=4:n=3"], 2, "icd: error: sparsity:n=2:m=4:n=3: option 'n' given twice"),
    (["--set", "pipeline.equivalence_tol=1e-30", "--print-config"], 0, None),
])
def test_unclear_inputs_get_one_line(tmp_path, args, code, line):
    done = icd("run", *FAST, *args)
    assert done.returncode == code, done.stderr
    if line:
        assert done.stderr.strip().splitlines()[-1].startswith(line) and "internal error" not in done.stderr
    else:
        assert "equivalence_tol: 1.0e-30" in done.stdout


def test_an_out_dir_that_is_a_file_and_a_binary_config(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    done = icd("run", *FAST, "--out-dir", str(target))
    assert done.returncode == 1 and done.stderr.strip() == f"icd: error: report.out_dir {target}: not a directory"
    config = tmp_path / "icd.yaml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    done = icd("run", "-c", str(config), "--out-dir", str(tmp_path / "runs"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"icd: error: {config}: not a text config (byte 0x89 at offset 0 is not UTF-8); "
                                   "expected YAML, JSON or TOML text")


def test_trace_with_an_unknown_group_or_an_overflowing_weight(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"dims": [1, 2]}\n{"dims": [3, 4], "group": "nope"}\n')
    done = icd("run", *FAST, "--trace", str(trace), "--out-dir", str(tmp_path / "runs"))
    assert done.returncode == 1 and done.stderr.strip() == (
        f"icd: error: {trace}:2: field 'group': 'nope' is not a group of this workload (groups: mlp.hidden)")
    trace.write_text('{"dims": [1, 2], "weight": 1e39}\n')
    done = icd("run", *FAST, "--trace", str(trace), "--out-dir", str(tmp_path / "runs"))
    assert done.returncode == 1 and done.stderr.strip().startswith(
        f"icd: error: {trace}:1: field 'weight': 1e+39 exceeds float32's range")


def test_report_and_compare_never_exit_0_having_written_nothing(tmp_path):
    _, run = run_pipeline(tmp_path, name="a")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("[1, 2]")
    done = icd("report", str(bad))
    assert done.returncode == 1 and done.stderr.strip() == (
        f"icd: error: {bad / 'metrics.json'}: not an icd metrics document (expected a JSON object with "
        f"\"schema\": \"icd.metrics/1\" and a \"run\" table)")
    assert sorted(p.name for p in bad.iterdir()) == ["metrics.json"]
    done = subprocess.run([*ICD, "report", str(run)], capture_output=True, text=True,
                          preexec_fn=_limit_file_size(2_000), timeout=60)
    assert done.returncode == 1 and "cannot write (File too large)" in done.stderr


def test_compare_warns_when_the_runs_differ_in_workload(tmp_path):
    _, a = run_pipeline(tmp_path, name="a")
    _, b = run_pipeline(tmp_path, name="b", overrides={"workload": "mock:hidden=64:tokens=16"})
    done = icd("compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    assert "warning: the runs differ in workload ('mock:hidden=128:tokens=32' vs 'mock:hidden=64:tokens=16')" \
        in done.stderr
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["warnings"][0].startswith("the runs differ in workload")
    lat = next(r for r in doc["rows"] if r["metric"] == "lat_ms")
    assert "unpaired" in lat["basis"] and lat["ci95_pct"][0] <= lat["change_pct"] <= lat["ci95_pct"][1]
