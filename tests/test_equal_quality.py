"""Equal-quality comparison: the rate search, the identity arm, the decomposition."""

from __future__ import annotations

import json
from typing import Any

import attrs
import numpy as np
import pytest

from icd_core import AUTO, Figure, Knob, Samples, TransformMeta, TransformResult
from icd_core.report.card import verdict_card
from icd_core.report.cells import fmt
from icd_core.run.ratesearch import Trial, judge_drop, search

from .conftest import make_plugin, run_pipeline


def test_bisection_finds_the_most_aggressive_passing_value():
    seen = []

    def evaluate(value):
        seen.append(value)
        return Trial(value, None, None, value >= 37)  # a budget of pages: more is gentler

    value, trials = search(Knob("budget", gentle=256, aggressive=1, integer=True, geometric=True), evaluate, 20)
    assert value == 37 and seen[:2] == [1, 256] and len(trials) == len(seen) <= 12
    assert search(Knob("rate", 0.0, 0.95), lambda v: Trial(v, None, None, True), 8)[0] == 0.95  # all pass
    value, trials = search(Knob("rate", 0.0, 0.95), lambda v: Trial(v, None, None, False), 8)
    assert value == 0.0 and len(trials) == 2  # nothing passes: the gentlest, said so by its trial
    value, trials = search(Knob("rate", 0.0, 0.95, resolution=0.02), lambda v: Trial(v, None, None, v < 0.5), 5)
    assert len(trials) == 5 and value < 0.5  # bounded: stops at five evaluations


def test_a_loss_is_judged_on_the_upper_end_of_its_ci_in_either_direction():
    items = np.linspace(0, 1, 400)
    dense = Figure(50.0, "measured:x", samples=Samples("token", 50 + items))
    assert judge_drop("q", dense, Figure(49.9, "measured:x", samples=Samples("token", 49.95 + items)), 0.1, 1, 0).ok
    assert not judge_drop("q", dense, Figure(49.0, "measured:x", samples=Samples("token", 49 + items)), 0.1, 1, 0).ok
    kl = Figure(0.0, "measured:x", samples=Samples("token", 0 * items), better="lower")
    rise = judge_drop("kl", kl, Figure(0.01, "measured:x", samples=Samples("token", 0.002 + 0.01 * items),
                                       better="lower"), 0.005, 1, 0)
    assert not rise.ok and rise.drop == pytest.approx(0.007) and rise.ci95[1] > 0.005


@attrs.frozen
class DamageOptions:
    rate: Any = AUTO

    def auto_knob(self, state) -> Knob | None:
        return Knob("rate", 0.0, 0.9, resolution=0.05) if self.rate == AUTO else None


def register(registry):
    registry.add("adapter", "damage", summary="zero the `rate` weakest fc2 columns", options=DamageOptions,
                 positional=("rate",))


def transform(ctx, adapter, state, layout):
    """Zero a share of fc2's input columns: the weakest ones (a real effect), but with the
    identity arm's ``layout.permute`` false, the first ones (what no layout chose)."""
    if adapter.name != "damage":
        return None
    w = state.tensors["mlp.fc2.weight"]
    count = int(round(adapter.options.rate * w.shape[1]))
    order = np.argsort(np.abs(w).sum(0)) if layout.permute else np.arange(w.shape[1])
    pruned = w.copy()
    pruned[:, order[:count]] = 0
    meta = TransformMeta(adapter="damage", spec=adapter.text, details={"sparsity": {"type": "columns", "rate": adapter.options.rate}},
                         stats={"tensors": ["mlp.fc2.weight"], "permuted": layout.permute})
    return TransformResult(state=state.with_transform({"mlp.fc2.weight": pruned}, meta), meta=meta)


DAMAGE = make_plugin("damage", icd_register=register, icd_apply_transform=transform)


def test_each_arm_is_searched_to_its_own_rate_and_the_run_decomposes(tmp_path):
    outcome, run = run_pipeline(tmp_path, DAMAGE, overrides={
        "transform.adapters": ["damage:auto"], "execution.rate_limit": 8.0, "rollback.enabled": False})
    assert outcome.ok, outcome.error
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["results"]) == {"pre", "identity", "linear", "iterative"}
    search_ = m["rate_search"]
    assert set(search_) == {"identity", "linear", "iterative"}
    identity, linear = search_["identity"], search_["linear"]
    assert identity["metric"] == "cosine_pct" and identity["limit"] == 8.0 and identity["met"] is True
    assert linear["chosen"] >= identity["chosen"] > 0  # the weakest columns cost no more quality
    assert all(t["ci95"][1] <= 8.0 for t in linear["trials"] if t["ok"])
    assert all(t["ci95"][1] > 8.0 for t in linear["trials"] if not t["ok"])
    assert m["results"]["identity"]["transforms"][0]["stats"]["permuted"] is False
    decomposition = m["decomposition"]
    assert decomposition["arms"]["linear"]["rate"] == linear["chosen"]
    assert decomposition["arms"]["pre"]["quality_loss"] == 0.0
    throughput = m["results"]["linear"]["figures"]["toks_per_s"]["value"]
    assert decomposition["arms"]["linear"]["ms_per_token"] == pytest.approx(1e3 / throughput)
    assert set(decomposition["steps"]) >= {"layout", "re-permutation", "identity vs dense"}
    assert "lat_ms" in decomposition["steps"]["layout"]
    assert "identity" in (run / "report.html").read_text()
    first = verdict_card(m).layout_answer  # the card leads with the rate each order reached
    assert first.startswith(f"What did layout add to damage:auto? At equal quality the rate went identity "
                            f"{identity['knob']} {fmt(identity['chosen'])} → linear {linear['knob']} "
                            f"{fmt(linear['chosen'])}; permuted vs natural order: cosine_pct "), first
    assert first.endswith("(no random-order control: the rate is searched per arm; a control would repeat the "
                          "search per random order)."), first


def test_two_auto_rates_and_an_unknown_rate_metric_are_refused(tmp_path):
    from icd_core.contract.errors import ConfigError

    with pytest.raises(ConfigError, match="only one adapter may have an auto rate"):
        run_pipeline(tmp_path, DAMAGE, name="two", overrides={"transform.adapters": ["damage:auto", "damage:auto"]})
    with pytest.raises(ConfigError, match="execution.rate_metric: 'nope' is not a quality figure of workload 'mock'"):
        run_pipeline(tmp_path, DAMAGE, name="bad", overrides={"transform.adapters": ["damage:auto"],
                                                              "execution.rate_metric": "nope"})
