"""Timing checks that need many repeats: slow-marked (make test-all), never timed asserts."""

from __future__ import annotations

import numpy as np
import pytest

from icd_core.builtins.workload_mock import MockOptions, build_mock_state
from icd_core.run import timing as wc


@pytest.mark.slow
def test_a_state_timed_against_itself_has_a_ci_around_zero():
    state = build_mock_state(MockOptions(hidden=1024, tokens=512), np.random.default_rng(0))
    samples = wc.interleaved_samples({"a": state, "b": state}, 5, 40).ms
    pair = wc.paired_ratio(samples["a"], samples["b"], 0)
    lo, hi = pair["ci95_pct"]
    assert pair["rounds"] == 40 and lo <= hi
    assert lo <= 0 <= hi or abs(pair["median_pct"]) < 5  # a loaded machine may shift the CI, not by much
