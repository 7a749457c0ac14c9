"""GPTQ and round-to-nearest plans checked on small cases where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from icd_adapter_quant.gptq import Plan, gptq, output_error, rtn
from icd_adapter_quant.minmax import quantize_dequantize


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 128))
    mix = np.eye(128) + 0.3 * rng.standard_normal((128, 128))  # correlated inputs, uneven scales
    x = rng.standard_normal((1024, 128)) @ mix * rng.uniform(0.1, 3.0, 128)
    return w, x.T @ x


def test_natural_rtn_is_the_adapters_min_max(layer):
    w, _ = layer
    assert np.allclose(rtn(w, 4, Plan.natural(128, 32)), quantize_dequantize(w, 1, "int4", 32, True))


def test_with_uncorrelated_inputs_gptq_has_no_error_to_spread_and_equals_rtn(layer):
    w, _ = layer
    diagonal = np.diag(np.random.default_rng(1).uniform(1.0, 2.0, 128))
    assert np.array_equal(gptq(w, diagonal, 4, Plan.natural(128, 32), damp=0.0), rtn(w, 4, Plan.natural(128, 32)))


def test_lazy_blocks_change_nothing(layer):
    w, h = layer
    plan = Plan.natural(128, 8)
    assert np.allclose(gptq(w, h, 4, plan, block=8), gptq(w, h, 4, plan, block=128), atol=1e-10)


def test_gptq_lowers_the_output_error_and_act_order_lowers_it_more(layer):
    w, h = layer
    natural, act = Plan.natural(128, 32), Plan.act_order(np.diag(h), 32)
    rtn_error = output_error(w, rtn(w, 4, natural), h)
    gptq_error = output_error(w, gptq(w, h, 4, natural), h)
    act_error = output_error(w, gptq(w, h, 4, act), h)
    assert act_error < gptq_error < 0.7 * rtn_error
    assert act.needs_g_idx and sorted(np.bincount(act.group_of)) == [32] * 4  # four groups of scattered columns
    contiguous = Plan.contiguous_act_order(np.diag(h), 32)
    assert not contiguous.needs_g_idx and np.array_equal(contiguous.group_of, np.arange(128) // 32)
    assert output_error(w, gptq(w, h, 4, contiguous), h) < gptq_error


def test_a_group_decided_during_the_visit_must_fit_one_block(layer):
    w, h = layer
    scattered = Plan(np.arange(128) % 4, np.arange(128))  # group 0 = columns 0, 4, 8, … across blocks
    with pytest.raises(ValueError, match="within one block"):
        gptq(w, h, 4, scattered, block=32)
