"""``icd sweep``: trials planned and validated up front, run in processes, resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from filelock import FileLock

from .conftest import ICD, icd

BASE = 'base: {workload: "mock:hidden=128:tokens=32", solver: {name: spectral}, pipeline: {repeats: 3, warmup_iter: 1}}\n'
GRID = 'grid: {transform.sparsity: ["2:4", "1:4"], pipeline.mode: [linear, iterative]}\n'


def write_spec(tmp_path, text: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1]


def test_a_four_trial_sweep_runs_writes_its_table_and_a_rerun_skips_everything(tmp_path):
    spec = write_spec(tmp_path, BASE + GRID)
    out = tmp_path / "out"
    done = icd("sweep", str(spec), "--out-dir", str(out), "--workers", "2", timeout=300)
    assert done.returncode == 0, done.stderr
    assert last_line(done) == "sweep spec: 4 trials, 4 executed, 0 skipped, 0 failed"
    manifest = json.loads((out / "spec" / "sweep.json").read_text())
    assert sorted(t["params"]["transform.sparsity"] + t["params"]["pipeline.mode"] for t in manifest["trials"]) == \
        ["1:4iterative", "1:4linear", "2:4iterative", "2:4linear"]
    assert {t["state"] for t in manifest["trials"]} == {"done"}
    for trial in manifest["trials"]:
        perm = json.loads((out / "spec" / trial["run_dir"] / "perm.json").read_text())
        assert sorted(perm["groups"]["mlp.hidden"]["pi0"]) == list(range(128))
    rows = (out / "spec" / "sweep.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 5 and header[:5] == ["trial", "state", "error", "param.transform.sparsity",
                                              "param.pipeline.mode"]
    assert "linear.lat_ms" in header and "linear.lat_ms.source" in header
    before = {t["name"]: (out / "spec" / t["run_dir"] / "metrics.json").stat().st_mtime_ns
              for t in manifest["trials"]}
    again = icd("sweep", str(spec), "--out-dir", str(out), timeout=120)
    assert again.returncode == 0 and last_line(again) == "sweep spec: 4 trials, 0 executed, 4 skipped, 0 failed"
    assert before == {t["name"]: (out / "spec" / t["run_dir"] / "metrics.json").stat().st_mtime_ns
                      for t in manifest["trials"]}


@pytest.mark.parametrize("text, message", [
    (BASE + "gird: {}\n", "unknown key 'gird' (expected one of: base, grid, seeds)"),
    (BASE + "grid: {transform.sparsity: []}\n", "grid.transform.sparsity: empty list"),
    (BASE + 'grid: {transform.sparsity: "2:4"}\n', "grid.transform.sparsity: expected a list of values"),
    (BASE, "grid: empty (give at least one grid axis or a list of seeds)"),
    (BASE + 'grid: {transform.sparsity: ["9:4"]}\n', "sparsity: n (9) must be < m (4)"),
    (BASE + 'grid: {pipeline.repeats: [0]}\n', "pipeline.repeats"),
])
def test_a_bad_spec_is_one_line_exit_2_and_nothing_runs(tmp_path, text, message):
    spec = write_spec(tmp_path, text)
    done = icd("sweep", str(spec), "--out-dir", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and done.stderr.startswith("icd: error: ")
    assert not (tmp_path / "out").exists()


def test_a_failing_trial_is_recorded_retried_and_does_not_stop_the_others(tmp_path):
    spec = write_spec(tmp_path, BASE + 'grid: {graph.source: [mock, trace]}\n'
                      'seeds: [0]\n')
    done = icd("sweep", str(spec), "--out-dir", str(tmp_path / "out"), "--retries", "1",
               "--set", f"graph.trace.path={tmp_path / 'missing.jsonl'}", timeout=200)
    assert done.returncode == 1
    assert last_line(done) == "sweep spec: 2 trials, 1 executed, 0 skipped, 1 failed"
    trials = {t["params"]["graph.source"]: t for t in json.loads((tmp_path / "out" / "spec" / "sweep.json")
                                                                   .read_text())["trials"]}
    assert trials["mock"]["state"] == "done"
    assert trials["trace"]["state"] == "failed" and trials["trace"]["attempts"] == 2
    assert "missing.jsonl" in trials["trace"]["error"]
    assert "failed after 2 attempt(s)" in done.stderr


def trial_processes(out) -> list[str]:
    listing = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in listing if "icd_core.cli run" in line and str(out) in line]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_sweep_keeps_finished_trials_and_the_next_one_resumes(tmp_path, how):
    """Ctrl-C stops the trials and says so; a kill of the sweep takes its trials with it
    (PR_SET_PDEATHSIG); either way the next invocation resumes."""
    spec = write_spec(tmp_path, BASE + "seeds: [0, 1, 2]\n")
    out = tmp_path / "out"
    process = subprocess.Popen([*ICD, "sweep", str(spec), "--out-dir", str(out), "--workers", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # a background job inherits SIGINT ignored; Ctrl-C must reach this one
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manifest = out / "spec" / "sweep.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and any(t["state"] == "done" for t in json.loads(manifest.read_text())["trials"]):
            break
        time.sleep(0.2)
    if how == signal.SIGKILL:  # kill the sweep while a trial process is running
        while time.time() < deadline and not trial_processes(out):
            time.sleep(0.05)
        assert trial_processes(out)
    process.send_signal(how)
    stdout, _ = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "(interrupted: run it again to resume)" in stdout.strip().splitlines()[-1]
    else:
        assert process.returncode == -signal.SIGKILL
        time.sleep(0.5)  # the trial processes die with it
        assert trial_processes(out) == []
    states = [t["state"] for t in json.loads(manifest.read_text())["trials"]]
    finished = states.count("done")
    assert 1 <= finished < 3 and "failed" not in states
    resumed = icd("sweep", str(spec), "--out-dir", str(out), timeout=200)
    assert resumed.returncode == 0, resumed.stderr
    assert last_line(resumed) == f"sweep spec: 3 trials, {3 - finished} executed, {finished} skipped, 0 failed"
    assert [p.name for p in (out / "spec").iterdir() if ".partial-" in p.name] == []


def test_a_second_sweep_on_the_directory_is_refused_and_a_finished_trial_never_overwritten(tmp_path):
    spec = write_spec(tmp_path, BASE + "seeds: [0]\n")
    out = tmp_path / "out"
    (out / "spec").mkdir(parents=True)
    with FileLock(str(out / "spec" / ".sweep.lock")):
        refused = icd("sweep", str(spec), "--out-dir", str(out))
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"icd: error: sweep spec: another sweep is running in {out / 'spec'} " \
                                     f"(it holds .sweep.lock)"
    assert icd("sweep", str(spec), "--out-dir", str(out), timeout=120).returncode == 0
    changed = icd("sweep", str(spec), "--out-dir", str(out), "--set", "pipeline.repeats=4")
    assert changed.returncode == 1 and "sweep.json belongs to another spec (base differs)" in changed.stderr
    forced = icd("sweep", str(spec), "--out-dir", str(out), "--set", "pipeline.repeats=4", "--force")
    assert forced.returncode == 1 and "holds a finished run of another config" in forced.stderr
    assert json.loads(next((out / "spec").glob("seed-0_*/metrics.json")).read_text())["run"]["repeats"] == 3


def test_local_and_ray_give_byte_identical_layouts_and_the_page_has_its_plots(tmp_path):
    """Rollback is off: its verdict follows timing noise, and perm.json records it."""
    pytest.importorskip("ray")
    pytest.importorskip("matplotlib")
    spec = write_spec(tmp_path, BASE + GRID + "seeds: [0]\n")
    runs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        done = icd("sweep", str(spec), "--out-dir", str(out), "--executor", executor, "--workers", "2",
                   "--set", "rollback.enabled=false", timeout=300)
        assert done.returncode == 0, done.stderr
        assert last_line(done) == "sweep spec: 4 trials, 4 executed, 0 skipped, 0 failed"
        runs[executor] = out / "spec"
    names = sorted(p.name for p in runs["local"].iterdir() if (p / "perm.json").is_file())
    assert len(names) == 4 and names == sorted(p.name for p in runs["ray"].iterdir() if (p / "perm.json").is_file())
    for name in names:
        assert (runs["local"] / name / "perm.json").read_bytes() == (runs["ray"] / name / "perm.json").read_bytes()
    page = (runs["ray"] / "sweep.html").read_text()
    assert page.count("<svg") >= 3 and "<h2>Equal-quality frontier</h2>" in page
    rerendered = icd("sweep", "report", str(runs["local"]))
    assert rerendered.returncode == 0 and (runs["local"] / "sweep.html").read_text().count("<svg") >= 3


def test_a_trial_on_cuda_asks_ray_for_a_gpu_and_others_do_not():
    from icd_core.run.ray_executor import gpus_of

    assert gpus_of({"workload": "smollm2:prompt=4096:device=cuda"}) == 1
    assert gpus_of({"workload": {"name": "minilm", "device": "cuda:0"}}) == 1
    assert gpus_of({"workload": "mock:hidden=128"}) == 0
