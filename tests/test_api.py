"""``import icd``: the Python API runs every call on small inputs, with the CLI's errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import icd
from icd_core import ConfigError, UsageError


def test_the_documented_examples_run():
    result = doctest.testmod(icd)
    assert result.attempted >= 8 and result.failed == 0


def test_build_w_mock_follows_its_arguments_and_refuses_unknown_ones():
    w = icd.build_w("mock", n=128, blocks=8, noise=0.0, seed=3)
    assert w.shape == (128, 128) and w.dtype == np.float32 and w.diagonal().max() == 0
    assert (icd.build_w("mock", n=128, blocks=8, noise=0.0, seed=3) != w).nnz == 0
    with pytest.raises(UsageError, match="unknown option 'nodes'"):
        icd.build_w("mock", nodes=10)


def test_fit_permutation_recovers_planted_blocks_and_reports_c_and_q():
    w = icd.build_w("mock", n=256, blocks=16, noise=0.0, seed=0)
    pi, stats = icd.fit_permutation(w, time_budget_s=30)
    assert sorted(pi.tolist()) == list(range(256))
    assert stats["C"] == pytest.approx(0.0, abs=1e-6) and stats["C_initial"] > 0.5 and "Q" in stats


def test_transforms_take_torch_tensors_and_give_torch_tensors_back():
    w = torch.randn(16, 64)
    out, meta = icd.apply_sparsity(w, type="unstructured", rate=0.75)
    assert isinstance(out, torch.Tensor) and (out == 0).float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert meta.sparsity["type"] == "unstructured"
    q, meta = icd.apply_quant(w, dtype="int4", group=32)
    assert isinstance(q, torch.Tensor) and meta.quant["group"] == 32
    assert len(torch.unique(q[0, :32])) <= 16  # 4 bits: at most 16 levels per group
    with pytest.raises(UsageError, match="expected a 2-D weight"):
        icd.apply_quant(torch.randn(4))
    with pytest.raises(ConfigError, match="sparsity"):
        icd.apply_sparsity(w, type="5:4")


def test_run_returns_its_artifacts_and_bad_config_is_one_error(tmp_path):
    result = icd.run({"workload": "mock:hidden=128:tokens=32", "pipeline.repeats": 3, "solver.name": "spectral"},
                     out_dir=tmp_path, name="api")
    assert result.ok and result.path == tmp_path / "api" and (result.path / "metrics.json").is_file()
    assert result.metrics["run"]["workload"].startswith("mock") and result.verdict
    with pytest.raises(ConfigError, match="pipeline.repeats"):
        icd.run({"pipeline.repeats": 0}, out_dir=tmp_path)
