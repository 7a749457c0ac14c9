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
    assert result.attempted >= 10 and result.failed == 0


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
    assert meta.details["sparsity"]["type"] == "unstructured"
    q, meta = icd.apply_quant(w, dtype="int4", group=32)
    assert isinstance(q, torch.Tensor) and meta.details["quant"]["group"] == 32
    assert len(torch.unique(q[0, :32])) <= 16  # 4 bits: at most 16 levels per group
    with pytest.raises(UsageError, match="expected a non-empty 2-D weight"):
        icd.apply_quant(torch.randn(4))
    with pytest.raises(ConfigError, match="sparsity"):
        icd.apply_sparsity(w, type="5:4")


def test_kvcache_eviction_keeps_sinks_recent_and_the_strongest_blocks():
    keys = torch.ones(1, 2, 512, 8)
    keys[:, :, 128:256] *= 0.1  # the weakest block, neither a sink nor the recent window
    keys[:, :, 256:384] *= 0.5
    (k, v), meta = icd.apply_kvcache((keys, keys.clone()), block=128, drop=0.5)
    assert isinstance(k, torch.Tensor) and k.shape == v.shape == (1, 2, 384, 8)
    assert torch.equal(k[..., 128:256, :], keys[..., 256:384, :])  # block 1 went; 0, 2, 3 stayed in order
    assert meta.details["kv"] == {"mode": "evict", "block": 128, "drop": 0.5, "score": "key_norm"}
    assert meta.stats["kv"] == {"tokens_before": 512, "tokens_after": 384, "blocks_dropped": 1}
    keys_only, _ = icd.apply_kvcache(np.ones((300, 4), np.float32), block=100, drop=0.0, axis=0)
    assert keys_only.shape == (300, 4)
    with pytest.raises(UsageError, match="keys and values differ in tokens"):
        icd.apply_kvcache((keys, keys[..., :10, :]))
    with pytest.raises(UsageError, match="expected keys or a"):
        icd.apply_kvcache((keys, keys, keys))
    with pytest.raises(ConfigError, match="drop"):
        icd.apply_kvcache(keys, drop=1.5)


def test_run_returns_its_artifacts_and_bad_config_is_one_error(tmp_path):
    result = icd.run({"workload": "mock:hidden=128:tokens=32", "pipeline.repeats": 3, "solver.name": "spectral"},
                     out_dir=tmp_path, name="api")
    assert result.ok and result.path == tmp_path / "api" and (result.path / "metrics.json").is_file()
    assert result.metrics["run"]["workload"].startswith("mock") and result.verdict
    with pytest.raises(ConfigError, match="pipeline.repeats"):
        icd.run({"pipeline.repeats": 0}, out_dir=tmp_path)


def test_the_api_page_example_runs(tmp_path, monkeypatch):
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)  # noqa: S102 - the project's own docs
    assert scope["result"].ok and (tmp_path / "runs" / "api" / "metrics.json").is_file()
    assert scope["k"].shape == (2, 640, 64)


def test_fit_permutation_solves_a_list_together_the_same_whatever_the_workers():
    ws = [icd.build_w("mock", n=256, blocks=16, noise=0.02, seed=s) for s in range(4)]
    one = icd.fit_permutation(ws, time_budget_s=None, workers=1)
    two = icd.fit_permutation(ws, time_budget_s=None, workers=2)
    assert len(one) == 4 and all(np.array_equal(a[0], b[0]) for a, b in zip(one, two))
    assert all(stats["C"] < stats["C_initial"] and stats["budget_s"] == 600.0 for _, stats in one)
    alone, _ = icd.fit_permutation(ws[2], time_budget_s=None)
    assert np.array_equal(alone, one[2][0])
