"""icd bridge --to tvm: attributes that round-trip, a check pass that catches tampering, a
permutation pass after which the compiled module still computes the workload's function."""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import numpy as np
import pytest

pytest.importorskip("tvm")

from icd_bridge_tvm.bridge import attach, check, final_layout, read_attrs  # noqa: E402
from icd_bridge_tvm.export import exported  # noqa: E402

from icd_core import InputDataError  # noqa: E402
from icd_core.testing import MockOptions, build_mock_state  # noqa: E402

ICD = [sys.executable, "-m", "icd_core.cli"]


def icd(*args):
    return subprocess.run([*ICD, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    made = {}
    for workload in ("mock:hidden=128:tokens=32", "mlp", "minilm:tasks=false"):
        name = workload.split(":")[0]
        done = icd("run", "--workload", workload, "--solver", "spectral", "--repeats", "3", "--set",
                   "rollback.enabled=false", "--out-dir", str(out), "--name", name)
        assert done.returncode == 0, done.stderr
        made[name] = out / name
    return made


@pytest.mark.parametrize("name", ["mock", "mlp", "minilm"])
def test_the_compiled_module_on_permuted_weights_equals_pytorch(runs, name, tmp_path):
    done = icd("bridge", str(runs[name]), "--to", "tvm", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "bridge.json").read_text())
    assert record["roundtrip"] is True and record["check"] == {"status": "ok", "problems": []}
    if name == "minilm":  # one encoder layer: only its FFN group has every member exported
        assert record["groups_carried"] == ["L0.ffn"] and "L1.ffn" in record["groups_not_carried"]
        assert record["roundtrip_scope"].startswith("the icd attributes on a stub module")
    else:
        assert record["roundtrip_scope"] == "the whole module"
    assert record["equivalence"]["max_rel_diff"] <= 1e-5 and record["tvm"] == "0.27.0.post1"
    assert [p["name"] for p in record["insertion_points"]] == ["icd.attach_layout", "icd.check_layout",
                                                               "icd.apply_layout"]
    layout = record["attrs"]["layout"]
    assert any(g["final"] != list(range(g["size"])) for g in layout.values())  # a real permutation was applied
    perm = json.loads((runs[name] / "perm.json").read_text())
    assert record["version_tag"] == perm["version_tag"]
    with np.load(tmp_path / "out" / "params.npz") as params:
        assert set(params.files) == set(record["params"])
    assert "icd.layout" in (tmp_path / "out" / "module.py").read_text()


def _module(runs):
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    from icd_core.toolkit import load_workload

    state = load_workload("mock:hidden=128:tokens=32", 0)
    export = exported(state)
    from tvm import relax

    mod = from_exported_program(torch.export.export(export.module, export.example), keep_params_as_input=True)
    mod, _ = relax.frontend.detach_params(mod)
    perm = json.loads((runs["mock"] / "perm.json").read_text())
    groups = {"p_mlp_fc1_weight": [["mlp.hidden", 0, 0, 1, None]], "p_mlp_fc2_weight": [["mlp.hidden", 1, 0, 1, None]],
              "p_mlp_fc1_bias": [["mlp.hidden", 0, 0, 1, None]]}
    return attach(mod, perm["version_tag"], final_layout(perm), groups), perm


def test_every_attribute_survives_the_round_trip_field_by_field(runs):
    import tvm

    mod, perm = _module(runs)
    back = tvm.script.from_source(mod.script())
    before, after = read_attrs(mod), read_attrs(back)
    assert after["version_tag"] == before["version_tag"] == perm["version_tag"]
    for group, entry in before["layout"].items():
        for key in ("pi0", "pi1", "final", "block", "size", "rolled_back", "tag"):
            assert after["layout"][group][key] == entry[key], (group, key)
    assert after["param_groups"] == before["param_groups"]


def test_the_check_pass_reports_a_tampered_tag_or_layout(runs):
    mod, perm = _module(runs)
    assert check(mod, perm)["status"] == "ok"
    tampered = {**perm, "version_tag": "0" * 64}
    result = check(mod, tampered)
    assert result["status"] == "mismatch" and result["problems"][0].startswith("version tag")
    group = next(iter(perm["groups"]))
    swapped = json.loads(json.dumps(perm))
    pi0 = swapped["groups"][group]["pi0"]
    pi0[0], pi0[1] = pi0[1], pi0[0]
    assert f"group {group}: pi0 differs from perm.json" in check(mod, swapped)["problems"]


def test_a_workload_it_cannot_export_is_one_clear_line():
    state = build_mock_state(MockOptions(hidden=32, tokens=4), np.random.default_rng(0))
    state = attrs.evolve(state, workload=attrs.evolve(state.workload, name="bert-base"))
    with pytest.raises(InputDataError, match="workload 'bert-base': icd-bridge-tvm exports mock, mlp, minilm"):
        exported(state)


def test_a_run_whose_rollback_did_not_verify_is_refused(runs, tmp_path):
    import shutil

    run = tmp_path / "unverified"
    shutil.copytree(runs["mock"], run)
    perm = json.loads((run / "perm.json").read_text())
    perm["rolled_back"] = {"in_effect": "unknown: the rollback did not verify", "verified": False}
    (run / "perm.json").write_text(json.dumps(perm))
    done = icd("bridge", str(run), "--to", "tvm", "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "rollback did not verify" in done.stderr
    assert not (tmp_path / "out").exists()
