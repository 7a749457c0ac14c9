"""The pipeline: artifacts, modes, determinism, rollback, timeouts, the permutation cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from icd_core import SolverTimeout, TransformMeta, TransformResult
from icd_core.contract import tensors as T
from icd_core.run.artifacts import load_w
from icd_core.testing import fresh_manager

from .conftest import make_plugin as plugin
from .conftest import run_pipeline

ARTIFACTS = {"config.json", "W.npz", "perm.json", "metrics.json", "events.jsonl", "report.html", "report.csv"}



def _in_tensors(state):
    return sorted({m.tensor for g in state.groups for m in g.members if m.role == "in"})


def register_faults(registry):
    for name in ("explode", "degrade", "halve"):
        registry.add("adapter", name, summary=f"test adapter {name}")
    registry.add("solver", "crash", summary="raises")
    registry.add("solver", "slow", summary="times out")


def fault_transform(ctx, adapter, state, layout):
    if adapter.name == "explode":
        raise RuntimeError("injected adapter failure")
    if adapter.name in ("degrade", "halve"):
        scale = 0.5 if adapter.name == "halve" else None
        updates = {}
        for n in _in_tensors(state):
            w = T.to_numpy(state.tensors[n])
            noise = np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype) * np.abs(w).mean() * 3
            updates[n] = w * scale if scale else w + noise
        meta = TransformMeta(adapter=adapter.name, spec=adapter.text, repermute=adapter.name == "halve",
                             repermute_reason="test")
        return TransformResult(state=state.with_transform(updates, meta), meta=meta)
    return None


def fault_fit(ctx, solver, w, constraints):
    if solver.name == "crash":
        raise RuntimeError("injected solver crash")
    if solver.name == "slow":
        raise SolverTimeout("budget of 0.001 s exhausted before a first solution")
    return None


FAULTS = plugin("faults", icd_register=register_faults, icd_apply_transform=fault_transform,
                icd_fit_permutation=fault_fit)


def metrics_of(run):
    return json.loads((run / "metrics.json").read_text())


def test_default_run_writes_every_artifact(tmp_path):
    outcome, run = run_pipeline(tmp_path)
    assert outcome.ok
    assert ARTIFACTS <= {p.name for p in run.iterdir()}
    m = metrics_of(run)
    assert set(m["results"]) == {"pre", "linear", "iterative"}
    lat = m["results"]["pre"]["figures"]["lat_ms"]
    assert lat["source"] == "measured:wallclock" and lat["n"] == 3 and lat["ci95"] is None  # no CI below 6 rounds
    l2 = m["results"]["pre"]["figures"]["l2_hit_pct"]
    assert l2["source"] == "modelled:cache-sim" and 0 < l2["value"] <= 100
    misses = m["results"]["pre"]["figures"]["cache_misses_per_access"]
    assert misses["misses"] > 0 and misses["replayed"].startswith("held-out") and "this CPU's L2" in misses["cache"]
    energy = m["results"]["pre"]["figures"]["ept_j_per_tok"]
    assert energy["value"] is None and energy["reason"].startswith("not measured")
    assert m["results"]["pre"]["quality"]["cosine_pct"]["value"] == pytest.approx(100.0)
    assert [v["gate"] for v in m["gates"]["verdicts"]] == ["latency", "l2_hit", "energy_per_token", "quality_drop"]
    verdicts = {v["gate"]: v for v in m["gates"]["verdicts"]}
    assert verdicts["energy_per_token"]["verdict"] == "not evaluated"
    assert verdicts["l2_hit"]["source"] == "modelled:cache-sim" and verdicts["l2_hit"]["verdict"] == "not evaluated"
    w = load_w(run / "W.npz")["mlp.hidden"]
    assert w.shape == (128, 128) and abs(w - w.T).max() == 0
    perm = json.loads((run / "perm.json").read_text())
    pi0 = perm["groups"]["mlp.hidden"]["pi0"]
    assert sorted(pi0) == list(range(128)) and len(perm["version_tag"]) == 64
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["stage"] == "load_workload" and events[-1]["stage"] == "report"
    states = [e["meta"]["state"] for e in events]
    assert states == ["READY", "W_BUILT", "MEASURED", "PERMUTED", "PERMUTED", "MEASURED", "MEASURED", "MEASURED",
                      "MEASURED", "MEASURED", "MEASURED", "REPORTED"]
    assert [e["meta"].get("what") for e in events[-4:-1]] == ["quality"] * 3  # judged on the timed runs' outputs
    timing = events[-5]["meta"]
    assert timing["branch"] == "pre+linear+iterative" and timing["what"] == "wall clock, interleaved"
    assert lat["interleaved_with"] == ["pre", "linear", "iterative"] and lat["threads"]["threads"]
    pair = m["comparisons"]["iterative_vs_linear"]["lat_ms"]
    assert pair["n"] == 3 and pair["basis"].startswith("3 interleaved rounds") and pair["unit"] == "%"
    assert m["timing"]["rounds"] == 3 and m["timing"]["order"] == "shuffled per round (seeded)"
    assert m["timing"]["threads"]["pinned"] is True and m["execution"]["layout_reading"] is False
    eq = m["equivalence"]
    assert eq["ok"] is True and 0 <= eq["max_rel_diff"] < 1e-6 and eq["tolerance"] == 1e-4
    assert m["events"]["overhead_pct"] < 5


def test_same_seed_gives_identical_w_perm_and_non_timing_metrics(tmp_path):
    _, a = run_pipeline(tmp_path, name="a", overrides={"transform.adapters": ["halve"]}, manager=fresh_manager(FAULTS))
    _, b = run_pipeline(tmp_path, name="b", overrides={"transform.adapters": ["halve"], "solver.cache": False},
                        manager=fresh_manager(FAULTS))
    assert (a / "W.npz").read_bytes() == (b / "W.npz").read_bytes()
    assert (a / "perm.json").read_bytes() == (b / "perm.json").read_bytes()
    assert (a / "W_prime.npz").read_bytes() == (b / "W_prime.npz").read_bytes()

    def non_timing(m):
        return {branch: (r["quality"], r["layout"], r["state_digest"]) for branch, r in m["results"].items()}

    assert non_timing(metrics_of(a)) == non_timing(metrics_of(b))
    _, c = run_pipeline(tmp_path, name="c", overrides={"seed": 1})
    assert (c / "W.npz").read_bytes() != (a / "W.npz").read_bytes()


@pytest.mark.parametrize("mode,branches", [("linear", {"pre", "linear"}), ("iterative", {"pre", "iterative"}),
                                           ("compare", {"pre", "identity", "linear", "iterative",
                                                        "random1", "random2", "random3"})])
def test_modes(tmp_path, mode, branches):
    outcome, run = run_pipeline(tmp_path, FAULTS, overrides={"pipeline.mode": mode, "transform.adapters": ["halve"]})
    m = metrics_of(run)
    states = [json.loads(line)["meta"]["state"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert ("REPERMUTED" in states) is (mode != "linear") and states.count("TRANSFORMED") == len(branches) - 1
    assert set(m["results"]) == branches
    assert m["gates"]["evaluated"] is (mode == "compare")
    pi1 = [f for f in m["fits"] if f["stage"] == "pi1"]
    assert len(pi1) == (0 if mode == "linear" else 1)
    assert (run / "W_prime.npz").exists() is (mode != "linear")


def test_compare_branches_start_from_the_same_state(tmp_path):
    _, run = run_pipeline(tmp_path, FAULTS, overrides={"transform.adapters": ["halve"]})
    m = metrics_of(run)
    # With the identity solver π₁ changes nothing, so both branches end bit-identical.
    assert m["results"]["linear"]["state_digest"] == m["results"]["iterative"]["state_digest"]
    assert m["results"]["linear"]["state_digest"] != m["results"]["pre"]["state_digest"]


def test_failing_adapter_is_a_recorded_noop_and_state_is_untouched(tmp_path):
    outcome, run = run_pipeline(tmp_path, FAULTS, overrides={"transform.adapters": ["explode"]})
    assert outcome.ok
    m = metrics_of(run)
    meta = m["results"]["linear"]["transforms"][0]
    assert meta["noop"] is True and meta["reason"] == "RuntimeError: injected adapter failure"
    # identity π₀ + failed adapter: the state is bit-identical to the loaded one.
    assert m["results"]["linear"]["state_digest"] == m["results"]["pre"]["state_digest"]
    warnings = [json.loads(l) for l in (run / "events.jsonl").read_text().splitlines() if '"warning"' in l]
    assert "adapter explode failed" in warnings[0]["message"]


def test_regression_rolls_everything_back_bit_identically(tmp_path):
    outcome, run = run_pipeline(tmp_path, FAULTS, overrides={
        "transform.adapters": ["degrade"], "rollback.quality_pp": 0.5, "solver.name": "identity"})
    m = metrics_of(run)
    assert outcome.ok and m["rollback"]["trigger"] == "regression"
    assert m["rollback"]["why"][0].startswith("quality cosine_pct -")
    assert m["rollback"]["verified"] is True
    assert m["final"]["state_digest"] == m["results"]["pre"]["state_digest"]
    assert m["results"]["iterative"]["state_digest"] != m["results"]["pre"]["state_digest"]
    saved = json.loads((run / "rollback" / "rollback.json").read_text())
    assert saved["undone"] == ["transform:degrade", "pi0:mlp.hidden"]
    assert "Rolled back" in m["verdict"]


def test_no_rollback_within_tolerance(tmp_path):
    _, run = run_pipeline(tmp_path, FAULTS, overrides={"transform.adapters": ["degrade"]})
    assert metrics_of(run)["rollback"] is None  # quality_pp is null by default


def test_solver_crash_fails_the_run_and_restores_pi_prev(tmp_path):
    outcome, run = run_pipeline(tmp_path, FAULTS, overrides={"solver.name": "crash"})
    assert not outcome.ok and outcome.error == "RuntimeError: injected solver crash"
    m = metrics_of(run)
    assert m["run"]["ok"] is False and m["rollback"]["trigger"] == "failure"
    assert m["final"]["state_digest"] == m["results"]["pre"]["state_digest"]
    assert "The run failed" in m["verdict"]


def test_solver_timeout_keeps_the_initial_order_flagged(tmp_path):
    outcome, run = run_pipeline(tmp_path, FAULTS, overrides={"solver.name": "slow"})
    assert outcome.ok, outcome.error
    fit = metrics_of(run)["fits"][0]
    assert fit["stats"]["timed_out"] is True and fit["stats"]["kept"].endswith("kept the current order")
    warnings = [json.loads(l)["message"] for l in (run / "events.jsonl").read_text().splitlines() if '"warning"' in l]
    assert warnings == ["solver slow hit its 600 s budget: kept the current order"]
    perm = json.loads((run / "perm.json").read_text())
    assert perm["groups"]["mlp.hidden"]["pi0"] == list(range(128))


def test_block_size_follows_line_bytes_and_dtype(tmp_path):
    _, run = run_pipeline(tmp_path, name="a", overrides={"solver.line_bytes": 128})
    assert json.loads((run / "perm.json").read_text())["groups"]["mlp.hidden"]["block"] == 32  # fp32
    _, run = run_pipeline(tmp_path, name="b", overrides={"solver.block": 8})
    assert json.loads((run / "perm.json").read_text())["groups"]["mlp.hidden"]["block"] == 8


def test_permutation_cache_hits_on_the_same_inputs(tmp_path):
    _, first = run_pipeline(tmp_path, name="a")
    _, second = run_pipeline(tmp_path, name="b")
    assert [f["cache"] for f in metrics_of(first)["fits"]] == ["miss"]
    assert [f["cache"] for f in metrics_of(second)["fits"]] == ["hit"]
    assert (first / "perm.json").read_bytes() == (second / "perm.json").read_bytes()
    _, third = run_pipeline(tmp_path, name="c", overrides={"graph.mock.noise": 0.2})
    assert [f["cache"] for f in metrics_of(third)["fits"]] == ["miss"]


def test_worse_permutations_are_not_applied(tmp_path):
    def reverse_fit(ctx, solver, w, constraints):
        if solver.name != "reverse":
            return None
        from icd_core.contract.records import FitResult
        from icd_core.layout.metrics import fit_stats

        perm = np.arange(w.n)[::-1].copy()
        return FitResult(perm=perm, stats=fit_stats(w.matrix, perm, w.block, method="reverse", time_s=0.0))

    def reg(registry):
        registry.add("solver", "reverse", summary="reverses")

    # a trace whose accesses are the aligned 16-blocks of the load order: identity is optimal
    # (C = 0); reversing 120 dims shifts every block boundary, so C rises and π must be refused.
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"dims": list(range(b, min(b + 16, 120)))}) + "\n" for b in range(0, 120, 16)))
    outcome, run = run_pipeline(tmp_path, plugin("rev", icd_register=reg, icd_fit_permutation=reverse_fit), overrides={
        "solver.name": "reverse", "workload": "mock:hidden=120:tokens=8", "graph.source": "trace",
        "graph.trace.path": str(trace)})
    fit = metrics_of(run)["fits"][0]
    assert fit["stats"]["C_initial"] == 0.0 and fit["stats"]["rejected"].startswith("C 0.")
    assert json.loads((run / "perm.json").read_text())["groups"]["mlp.hidden"]["pi0"] == list(range(120))


def test_an_incomplete_group_fails_the_equivalence_check(tmp_path):
    import attrs

    from icd_core.builtins.workload_mock import MockOptions, build_mock_state
    from icd_core.contract.records import FitResult

    def register(registry):
        registry.add("workload", "broken-groups", summary="mock MLP whose group forgets fc1.bias")
        registry.add("solver", "shuffle", summary="a seeded random order")

    def load(ctx, workload):
        if workload.name != "broken-groups":
            return None
        state = build_mock_state(MockOptions(hidden=64, tokens=8), ctx.rng("w"))
        group = state.groups[0]
        short = attrs.evolve(group, members=tuple(m for m in group.members if m.tensor != "mlp.fc1.bias"))
        return attrs.evolve(state, groups=(short,))

    def fit(ctx, solver, w, constraints):
        if solver.name != "shuffle":
            return None
        return FitResult(perm=np.random.default_rng(0).permutation(w.n), stats={"method": "shuffle"})

    broken = plugin("bw", icd_register=register, icd_load_workload=load, icd_fit_permutation=fit)
    outcome, run = run_pipeline(tmp_path, broken, overrides={"workload": "broken-groups", "solver.name": "shuffle"})
    m = metrics_of(run)
    assert not outcome.ok and "π₀ changed the output of workload 'broken-groups'" in outcome.error
    assert "group mlp.hidden alone: max relative difference" in outcome.error  # the group that misses a member
    assert m["rollback"]["verified"] is True
    assert m["equivalence"]["ok"] is False and m["equivalence"]["max_rel_diff"] > 1e-2


def test_two_four_stays_exact_in_memory_order_after_repermutation(tmp_path):
    from icd_adapter_sparsity import plugin as sparsity
    from icd_solver_spectral import plugin as spectral

    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import load_config
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.selection import select

    manager = fresh_manager(sparsity, spectral)
    config = load_config(cli={"workload": "mock:hidden=128:tokens=16", "pipeline.mode": "iterative",
                              "pipeline.repeats": 3, "transform.adapters": ["sparsity:2:4"],
                              "report.out_dir": str(tmp_path)})
    outcome = launch_committed(manager, select(config, manager.registry), RunDirectory(tmp_path, "nm").open())
    final = outcome.states[outcome.kept]
    assert outcome.ok and [f["stage"] for f in outcome.record.metrics["fits"]] == ["pi0", "pi1"]
    w2 = final.tensors["mlp.fc2.weight"]
    assert ((w2.reshape(w2.shape[0], -1, 4) != 0).sum(axis=-1) == 2).all()
    pi1 = np.asarray(json.loads((tmp_path / "nm" / "perm.json").read_text())["groups"]["mlp.hidden"]["pi1"])
    blocks = pi1.reshape(-1, 4)
    assert np.all(blocks[:, 0] % 4 == 0) and np.all(np.diff(blocks, axis=1) == 1)


def test_every_measure_giving_a_figure_is_kept_under_its_source(tmp_path):
    """Two measures of one figure (the audit's cache + cachegrind): both reach metrics.json,
    the measured one shown first, the others as alternatives, in the report too."""
    from icd_core import Figure

    def register(registry):
        registry.add("measure", "fake-ncu", summary="a measured L2 hit rate", provides=("l2_hit_pct",))
        registry.add("measure", "fake-sim", summary="a simulated one", provides=("l2_hit_pct",))

    def measure(ctx, measure, state):
        if measure.name == "fake-ncu":
            return {"l2_hit_pct": Figure(42.0, "measured:fake-ncu", unit="%", detail={"deterministic": True})}
        if measure.name == "fake-sim":
            return {"l2_hit_pct": Figure(77.0, "simulated:fake", unit="%")}
        return None

    fakes = plugin("fakes", icd_register=register, icd_measure=measure)
    _, run = run_pipeline(tmp_path, fakes, overrides={"measure.use": ["wallclock", "cache", "fake-sim", "fake-ncu"]})
    m = metrics_of(run)
    pre = m["results"]["pre"]
    assert pre["figures"]["l2_hit_pct"]["source"] == "measured:fake-ncu"
    assert [f["source"] for f in pre["alternatives"]["l2_hit_pct"]] == ["simulated:fake", "modelled:cache-sim"]
    gate = next(v for v in m["gates"]["verdicts"] if v["gate"] == "l2_hit")
    assert gate["source"] == "measured:fake-ncu" and gate["verdict"] == "fail" and gate["value"] == 0.0
    assert "l2_hit_pct [simulated:fake]" in (run / "report.csv").read_text()


def test_config_json_is_written_once_settled_and_also_when_loading_fails(tmp_path):
    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import load_config
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.selection import select

    def register(registry):
        registry.add("workload", "broken", summary="fails to load")

    def load(ctx, workload):
        if workload.name == "broken":
            raise RuntimeError("weights missing")
        return None

    manager = fresh_manager(plugin("brokenload", icd_register=register, icd_load_workload=load))
    for workload, name in (("mock:hidden=128:tokens=32", "ok"), ("broken", "bad")):
        config = load_config(cli={"workload": workload, "pipeline.repeats": 3, "report.out_dir": str(tmp_path)})
        outcome = launch_committed(manager, select(config, manager.registry), RunDirectory(tmp_path, name).open())
        assert outcome.artifacts.count("config.json") == 1
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["pipeline"]["repeats"] == 3 and saved["seed"] == 0
        assert outcome.ok is (name == "ok")
    assert "weights missing" in json.loads((tmp_path / "bad" / "metrics.json").read_text())["run"]["error"]
