"""Verdicts from paired statistics: the CI rule, one source per comparison, modelled figures
deciding nothing by default, rollback tolerances judged on the whole CI."""

from __future__ import annotations

import numpy as np
import pytest

from icd_core.config.schema import GatesConfig, RollbackConfig
from icd_core.contract.records import Figure, Samples
from icd_core.report.gates import evaluate_gates
from icd_core.run.paired import compare, judge, statistic
from icd_core.run.results import BranchResult
from icd_core.run.tolerances import regressions

RNG = np.random.default_rng(7)
BASE_MS = 10.0 + RNG.normal(0, 0.8, 30)  # round-to-round drift shared by both states of a round


def latency(ratio: float, noise: float = 0.01, seed: int = 0) -> Figure:
    """Per-round timings ``ratio`` × the shared drift, with a little independent noise."""
    own = np.random.default_rng(seed).normal(0, noise, BASE_MS.size)
    samples = BASE_MS * ratio * (1 + own)
    return Figure(float(np.median(samples)), "measured:wallclock", unit="ms", samples=Samples("round", samples, "median"))


def quality(drop_pp: float = 0.0, seed: int = 0) -> Figure:
    """A per-example score (percent) lowered by ``drop_pp`` on average."""
    base = np.random.default_rng(99).uniform(60, 100, 400)
    values = base - drop_pp + np.random.default_rng(seed).normal(0, 0.01, base.size) * (drop_pp != 0)
    return Figure(float(values.mean()), "measured:task", unit="%", samples=Samples("example", values))


def branch(lat: Figure | None = None, l2: tuple[Figure, ...] = (), ept: Figure | None = None,
           q: Figure | None = None) -> BranchResult:
    figures = {"lat_ms": (lat or Figure.missing("absent"),), "l2_hit_pct": l2 or (Figure.missing("absent"),),
               "ept_j_per_tok": (ept or Figure.missing("absent"),)}
    return BranchResult(figures=figures, quality={"acc": q or quality()}, primary_quality="acc", measures={},
                        layout={}, state_digest="x", tokens=1)


def verdicts(a: BranchResult, b: BranchResult, **gates) -> dict[str, dict]:
    return {v["gate"]: v for v in evaluate_gates(a, b, GatesConfig(**gates))}


def test_the_ci_rule():
    assert judge((-30.0, -21.0), -20.0, "lower") == "pass"
    assert judge((-19.0, 3.0), -20.0, "lower") == "fail"
    assert judge((-25.0, -15.0), -20.0, "lower") == "inconclusive"
    assert judge((11.0, 12.0), 10.0, "higher") == "pass" and judge((2.0, 9.9), 10.0, "higher") == "fail"
    assert judge(None, -20.0, "lower") == "inconclusive"


def test_latency_passes_only_when_the_whole_paired_ci_is_beyond_the_target():
    linear = branch(latency(1.0))
    assert verdicts(linear, branch(latency(0.70, seed=1)))["latency"]["verdict"] == "pass"
    assert verdicts(linear, branch(latency(0.90, seed=1)))["latency"]["verdict"] == "fail"
    straddle = verdicts(linear, branch(latency(0.80, noise=0.06, seed=1)))["latency"]
    assert straddle["verdict"] == "inconclusive" and straddle["ci95"][0] < -20 < straddle["ci95"][1]
    v = verdicts(linear, branch(latency(0.70, seed=1)))["latency"]
    assert v["value"] == pytest.approx(-30, abs=1.5) and "30 interleaved rounds" in v["decided_by"]


def test_pairing_removes_the_drift_that_unpaired_medians_suffer():
    a, b = latency(1.0, noise=0.005), latency(1.0, noise=0.005, seed=3)
    change = compare("lat_ms", a, b, "relative")
    assert change.ci95[1] - change.ci95[0] < 1.0  # ± well under 1 % although rounds drift by ±8 %


def test_identical_states_pass_no_cost_gate():
    same = branch(latency(1.0), l2=(Figure(80.0, "modelled:cache-sim", unit="%"),), q=quality())
    result = verdicts(same, same)
    assert result["latency"]["verdict"] == "fail" and result["latency"]["ci95"] == [0.0, 0.0]
    assert result["l2_hit"]["verdict"] == "not evaluated" and "allow_modelled" in result["l2_hit"]["reason"]
    assert result["energy_per_token"]["verdict"] == "not evaluated"
    assert verdicts(same, same, allow_modelled=True)["l2_hit"]["verdict"] == "fail"


def test_modelled_figures_decide_only_when_allowed():
    a = branch(latency(1.0), l2=(Figure(50.0, "modelled:cache-sim", unit="%"),))
    b = branch(latency(1.0), l2=(Figure(70.0, "modelled:cache-sim", unit="%"),))
    assert verdicts(a, b)["l2_hit"]["verdict"] == "not evaluated"
    allowed = verdicts(a, b, allow_modelled=True)["l2_hit"]
    assert allowed["verdict"] == "pass" and allowed["value"] == 20.0 and "modelled:cache-sim" in allowed["decided_by"]


def test_mixed_sources_are_not_evaluated_and_a_common_source_is_preferred():
    ncu = Figure(60.0, "measured:ncu", unit="%", detail={"deterministic": True})
    model = Figure(90.0, "modelled:cache-sim", unit="%")
    mixed = verdicts(branch(l2=(ncu,)), branch(l2=(model,)))["l2_hit"]
    assert mixed["verdict"] == "not evaluated"
    assert mixed["reason"] == "no common source (measured:ncu vs modelled:cache-sim)"
    both = verdicts(branch(l2=(ncu, model)), branch(l2=(Figure(75.0, "measured:ncu", unit="%",
                                                                   detail={"deterministic": True}), model)))["l2_hit"]
    assert both["source"] == "measured:ncu" and both["verdict"] == "pass" and both["value"] == 15.0


def test_a_single_noisy_measurement_has_no_ci_and_decides_nothing():
    a, b = branch(ept=Figure(1.0, "measured:nvml", unit="J/tok")), branch(ept=Figure(0.5, "measured:nvml", unit="J/tok"))
    v = verdicts(a, b)["energy_per_token"]
    assert v["verdict"] == "inconclusive" and v["ci95"] is None and "no confidence interval" in v["reason"]


def test_fewer_than_six_rounds_have_no_ci_and_decide_nothing():
    """The range of 3 rounds covers their median only 75 % of the time: not a 95 % CI."""
    def rounds(ratio, n):
        values = BASE_MS[:n] * ratio
        return Figure(float(np.median(values)), "measured:wallclock", unit="ms", samples=Samples("round", values, "median"))

    few = compare("lat_ms", rounds(1.0, 3), rounds(1.3, 3), "relative")
    assert few.ci95 is None and few.n == 3 and few.estimate == pytest.approx(30) and "too few" in few.basis
    zeros = Figure(1.0, "measured:wallclock", unit="ms", samples=Samples("round", np.zeros(3), "median"))
    assert "undefined" in compare("lat_ms", zeros, rounds(1.0, 3), "relative")
    assert regressions(branch(rounds(1.0, 3)), branch(rounds(1.3, 3)), RollbackConfig(), False) == []
    enough = compare("lat_ms", rounds(1.0, 6), rounds(1.3, 6), "relative")
    assert enough.ci95 == pytest.approx((30, 30)) and enough.n == 6
    assert regressions(branch(rounds(1.0, 6)), branch(rounds(1.3, 6)), RollbackConfig(), False)[0].startswith("latency")


def test_independent_windows_are_compared_unpaired():
    def windows(level, seed):
        values = level * (1 + np.random.default_rng(seed).normal(0, 0.01, 5))
        return Figure(float(values.mean()), "measured:nvml", unit="J/tok", samples=Samples("window", values))

    change = compare("ept_j_per_tok", windows(1.0, 0), windows(0.5, 1), "relative")
    assert "unpaired" in change.basis and change.ci95[1] < -45


def test_quality_drop_is_judged_on_the_upper_end_of_its_ci():
    linear = branch(q=quality())
    assert verdicts(linear, branch(q=quality(0.02, seed=1)))["quality_drop"]["verdict"] == "pass"
    fail = verdicts(linear, branch(q=quality(0.5, seed=1)))["quality_drop"]
    assert fail["verdict"] == "fail" and fail["value"] == pytest.approx(0.5, abs=0.01) and fail["ci95"][0] > 0.1


def test_correlation_statistics_resample_pairs():
    x = np.random.default_rng(0).normal(size=300)
    pairs = Samples("pair", np.column_stack([x, x + np.random.default_rng(1).normal(size=300)]), "pearson", 100.0)
    assert float(statistic(pairs)) == pytest.approx(100 * np.corrcoef(pairs.values.T)[0, 1])
    ranks = Samples("pair", pairs.values, "spearman", 100.0)
    from scipy.stats import spearmanr

    assert float(statistic(ranks)) == pytest.approx(100 * spearmanr(*pairs.values.T).statistic)


def test_regressions_need_the_whole_ci_beyond_tolerance():
    cfg = RollbackConfig(quality_pp=0.5)
    pre = branch(latency(1.0), q=quality())
    assert regressions(pre, branch(latency(1.05, seed=1), q=quality(0.1, seed=1)), cfg, False) == []
    bad = regressions(pre, branch(latency(1.3, seed=1), q=quality(2.0, seed=1)), cfg, False)
    assert [b.split()[0] for b in bad] == ["latency", "quality"] and "95 % CI" in bad[0]
    assert regressions(pre, branch(latency(1.12, noise=0.1, seed=1)), cfg, False) == []  # CI straddles +10 %
    model = (Figure(90.0, "modelled:cache-sim", unit="%"),)
    worse = (Figure(50.0, "modelled:cache-sim", unit="%"),)
    assert regressions(branch(l2=model), branch(l2=worse), cfg, False) == []
    assert regressions(branch(l2=model), branch(l2=worse), cfg, True)[0].startswith("L2 hit -40")


@pytest.mark.parametrize("allow_modelled", [False, True])
def test_a_perfect_layout_lowers_modelled_traffic_and_is_not_rolled_back(tmp_path, allow_modelled):
    """The audit's case: noise 0, spectral π₀ recovers the planted blocks exactly."""
    from icd_solver_spectral import plugin as spectral

    from .conftest import run_pipeline

    # A fixed 1 MiB, 16-way, 64 B-line cache: the host's L2 (sysfs) differs between machines,
    # and with 2 MiB the mock's whole working set fits, so misses are compulsory in every order.
    outcome, run = run_pipeline(tmp_path, spectral, overrides={
        "workload": "mock", "solver.name": "spectral", "graph.mock.noise": 0.0,
        "gates.allow_modelled": allow_modelled, "measure.cache.size_bytes": 1 << 20, "measure.cache.ways": 16,
        "measure.cache.line_bytes": 64})
    import json

    m = json.loads((run / "metrics.json").read_text())
    pre, linear = m["results"]["pre"], m["results"]["linear"]
    assert linear["layout"]["mlp.hidden"]["C"] == 0.0 and linear["layout"]["mlp.hidden"]["lines_per_access"] == 1.0
    for key in ("cache_lines_read_per_access", "cache_misses_per_access", "cache_bytes_per_access"):
        assert linear["figures"][key]["value"] < 0.7 * pre["figures"][key]["value"], key
    assert linear["figures"]["l2_hit_pct"]["value"] < pre["figures"]["l2_hit_pct"]["value"]  # the inversion
    assert outcome.ok and m["rollback"] is None
    l2 = next(v for v in m["gates"]["verdicts"] if v["gate"] == "l2_hit")
    assert l2["verdict"] == "not evaluated"
    assert "secondary figure only" in l2["reason"]  # the hit rate never decides, opted in or not
    assert "lat_ms, measured:wallclock" in m["verdict"] and "cosine_pct, measured:output-fidelity" in m["verdict"]
