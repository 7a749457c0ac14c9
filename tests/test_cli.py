"""The command line as users meet it: exit codes, one-line errors, light start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import icd

FAST = ["--repeats", "3", "--set", "pipeline.warmup_iter=1", "--workload", "mock:hidden=128:tokens=32"]


def test_help_and_version_import_neither_torch_nor_plugins():
    probe = (
        "import sys\n"
        "from icd_core.cli import cli\n"
        "for args in (['--help'], ['--version'], ['run', '--help']):\n"
        "    cli.main(args, standalone_mode=False)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'scipy', 'icd_solver_spectral', 'icd_adapter_sparsity', 'icd_measure_ncu'))\n"
        "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    assert "icd 0.1.0" in out.stdout and "spectral     icd-solver-spectral 0.1.0" in out.stdout


def test_unknown_solver_exits_2_with_did_you_mean(tmp_path):
    done = icd("run", "--solver", "spectrl", "--out-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "icd: error: unknown solver 'spectrl'. Did you mean 'spectral'? Installed: fiedler, identity, random, rcm, spectral"]
    assert not any(tmp_path.iterdir())


def test_bad_adapter_options_exit_2_naming_the_field(tmp_path):
    done = icd("run", "--adapter", "sparsity:4:2", "--out-dir", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip() == "icd: error: sparsity: n (4) must be < m (2)"


def test_config_with_unknown_key_exits_2_naming_it(tmp_path):
    config = tmp_path / "icd.yaml"
    config.write_text("solver:\n  name: spectral\n  time_budget: 5\n")
    done = icd("run", "-c", str(config), "--out-dir", str(tmp_path / "runs"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"icd: error: {config}: solver.time_budget: unknown key (expected one of: "
                                   "name, time_budget_s, refine_steps, k_blocks, block, line_bytes, cache)")
    assert not (tmp_path / "runs").exists()


def test_empty_trace_exits_with_one_line_and_leaves_earlier_runs_untouched(tmp_path):
    runs = tmp_path / "runs"
    first = icd("run", *FAST, "--out-dir", str(runs), "--name", "good")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (runs / "good").iterdir()}
    trace = tmp_path / "empty.jsonl"
    trace.write_text("")
    for name in ("good", "new"):
        done = icd("run", *FAST, "--trace", str(trace), "--out-dir", str(runs), "--name", name, "--force")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [f"icd: error: {trace}: empty trace (no access events)"]
    assert {p.name: p.read_bytes() for p in (runs / "good").iterdir()} == before
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == ["good"]
    assert not [p for p in runs.iterdir() if ".partial-" in p.name]


def test_run_prints_summary_and_path(tmp_path):
    done = icd("run", *FAST, "--adapter", "sparsity:2:4", "--out-dir", str(tmp_path), "--name", "x")
    assert done.returncode == 0, done.stderr
    assert "quality.cosine_pct" in done.stdout and done.stdout.strip().endswith(f"run directory: {tmp_path / 'x'}")
    metrics = json.loads((tmp_path / "x" / "metrics.json").read_text())
    assert metrics["run"]["solver"] == "spectral" and metrics["run"]["adapters"] == ["sparsity:2:4"]
    again = icd("run", *FAST, "--out-dir", str(tmp_path), "--name", "x")
    assert again.returncode == 1 and "run directory exists" in again.stderr


def test_measure_none_judges_quality_and_times_nothing(tmp_path):
    done = icd("run", *FAST, "--adapter", "sparsity:2:4", "--measure", "none", "--out-dir", str(tmp_path), "--name", "q")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert metrics["run"]["measures"] == [] and metrics["timing"] == {}
    linear = metrics["results"]["linear"]
    assert linear["figures"]["lat_ms"]["value"] is None and linear["quality"]["cosine_pct"]["value"] is not None
    assert metrics["comparisons"]["linear_vs_identity"]["cosine_pct"]["ci95"] is not None  # the card's question
    mixed = icd("run", *FAST, "--measure", "none", "--measure", "wallclock", "--out-dir", str(tmp_path))
    assert mixed.returncode == 2 and mixed.stderr.strip() == \
        "icd: error: --measure none: quality only, so no other measure (none, wallclock)"


def test_print_config_shows_the_effective_config(tmp_path):
    done = icd("run", "--print-config", "--set", "seed=9", "--adapter", "quant:int4:g32", "--out-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    import yaml

    config = yaml.safe_load(done.stdout)
    assert config["seed"] == 9 and config["solver"]["name"] == "spectral"
    assert config["transform"]["adapters"] == ["quant:int4:g32"]
    assert not any(tmp_path.iterdir())


def test_plugins_list_json_and_check():
    listed = icd("plugins", "list", "--json", "--all")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["spectral"]["distribution"] == "icd-solver-spectral" and rows["spectral"]["status"] == "ok"
    assert rows["ncu"]["provides"] == ["measure:ncu", "measure:nvml", "measure:rapl"]
    assert rows["builtin:solver_identity"]["builtin"] is True
    assert "icd_fit_permutation" in rows["spectral"]["hooks"]
    checked = icd("plugins", "check")
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.strip().endswith("all plugins keep the contract")


def test_debug_shows_the_traceback(tmp_path):
    done = icd("--debug", "run", "--solver", "nope", "--out-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" in done.stderr



@pytest.mark.parametrize("spec,line", [
    ("sparsity:5:4", "sparsity: n (5) must be < m (4)"),
    ("quant:int3", "quant: unknown option 'int3' (expected int8|int4|fp8, g<N>, tensor, sym|asym, cluster|sort|act|none)"),
    ("kv:0:0.1", "kv.block: must be > 0 (got 0)"),
    ("sparsity:unstructured:1.2", "sparsity: rate must be in [0, 1) or auto (got 1.2)"),
])
def test_bad_adapter_specs_exit_2_with_one_line(tmp_path, spec, line):
    done = icd("run", "--adapter", spec, "--out-dir", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip() == f"icd: error: {line}"
    assert not any(tmp_path.iterdir())


def test_a_paged_backend_without_a_kv_cache_exits_2_naming_the_option(tmp_path):
    done = icd("run", *FAST, "--backend", "paged", "--out-dir", str(tmp_path))
    assert done.returncode == 2 and done.stderr.strip() == (
        "icd: error: execution.backend paged: workload 'mock:hidden=128:tokens=32' has no KV-cache group to read in "
        "pages (a decoder with its cache's token axis, e.g. smollm2:groups=kv)")
    assert not any(p for p in tmp_path.iterdir() if not p.name.startswith("."))


def test_progress_shows_one_bar_with_an_eta_per_repeated_stage(capsys):
    from icd_core.cli.run import Progress

    progress = Progress()

    def stage(name, **meta):
        progress({"event": "stage", "stage": name, "t_start": 0.0, "t_end": 0.5, "ok": True, "meta": meta})

    stage("load_workload", groups={f"kv.L0.h{j}": 64 for j in range(3)})
    for j in range(3):
        stage("build_w", group=f"kv.L0.h{j}", matrix="W")
    stage("measure", branch="pre")
    err = capsys.readouterr().err
    assert "build_w W: 100%" in err and "3/3 [00:00<00:00" in err and "group/s" in err  # one bar: elapsed<ETA, rate
    assert "group=kv.L0" not in err and err.count("\n") == 3  # no line per group: load, the bar, measure
    assert "  measure          branch=pre" in err


def test_an_export_replays_the_exported_arm_only_and_measures_nothing():
    from icd_core.cli.export import replay_config
    from icd_core.config.files import load_config

    config = load_config(cli={"pipeline.random_orders": 3})
    for arm, mode in (("linear", "linear"), ("iterative", "iterative"), ("identity", "compare"), ("pre", "linear")):
        replay = replay_config(config, arm)
        assert replay.pipeline.mode == mode and replay.measure.use == [] and replay.pipeline.random_orders == 0
        assert replay.rollback.enabled is False and replay.seed == config.seed
