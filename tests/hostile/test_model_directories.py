"""Hostile model directories (issue 39): what a model directory holds must never run as code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("icd_workload_hf")

# the console script, as a user types it: ``python -m`` would itself put the cwd on sys.path
ICD_SCRIPT = Path(sys.executable).with_name("icd")
PLANTED = ("transformers", "torch", "safetensors", "numpy", "sitecustomize", "usercustomize")


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny Llama checkpoint whose directory also holds modules named like the libraries the
    reload check imports; each writes a marker file when imported."""
    import torch
    import transformers as T

    root = tmp_path_factory.mktemp("planted")
    model, marker = root / "model", root / "planted-code-ran"
    config = T.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=512, vocab_size=128)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        T.AutoModelForCausalLM.from_config(config).save_pretrained(model)
    for name in PLANTED:
        (model / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n")
    return model, marker


@pytest.mark.skipif(not ICD_SCRIPT.is_file(), reason="the icd console script is not installed beside this Python")
def test_modules_planted_in_the_model_directory_never_run_during_the_export(planted_model, tmp_path):
    """Also: the published icd_layout.json holds no home path and no secret (one run for both)."""
    model, marker = planted_model
    out, secret = tmp_path / "out", "hf_sekritTOKENvalue1234"
    done = subprocess.run([str(ICD_SCRIPT), "run", "--model", ".", "--workload", "model:groups=ffn",
                           "--adapter", "sparsity:2:4", "--out-dir", str(tmp_path / "runs"), "--name", f"r-{secret}",
                           "--export", str(out)], cwd=model, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HOME": str(tmp_path), "HF_TOKEN": secret, "TQDM_DISABLE": "1"})
    assert not marker.exists(), f"planted code ran: {marker.read_text()!r}"
    assert done.returncode == 0, done.stderr[-2000:]
    text = (out / "icd_layout.json").read_text()
    assert json.loads(text)["written"]["reload_check"]["max_rel_diff"] <= 1e-5
    assert str(tmp_path) not in text and secret not in text
    assert json.loads(text)["source"]["run_dir"].startswith("~/runs/")


def test_the_reload_child_is_isolated_and_leaves_the_working_directory(planted_model, tmp_path, monkeypatch):
    from icd_workload_hf.export import reload_command

    model, marker = planted_model
    monkeypatch.chdir(model)
    argv = reload_command(Path("."), "AutoModelForCausalLM", tmp_path / "b.pt", tmp_path / "o.pt")
    assert argv[1] == "-I" and argv[4] == str(model.resolve())  # isolated mode, absolute model path
    probe = [*argv[:2], "-c", "import sys, transformers; print(transformers.__file__)"]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=120, cwd=model)
    assert done.returncode == 0 and str(model) not in done.stdout and not marker.exists()


def test_a_sweep_trial_command_never_imports_from_the_working_directory(planted_model):
    from icd_core.contract.children import python_command

    model, marker = planted_model
    done = subprocess.run([*python_command("-c", "import sys; print(sys.path)")], capture_output=True, text=True,
                          timeout=60, cwd=model)
    assert done.returncode == 0 and "''" not in done.stdout and str(model) not in done.stdout
    assert not marker.exists()


@pytest.mark.parametrize("key", ["attn_implementation", "_attn_implementation"])
def test_an_attention_kernel_named_in_config_json_is_not_fetched(planted_model, tmp_path, key):
    import shutil

    from icd_workload_hf.architectures import architecture_of
    from icd_workload_hf.directory import load_pretrained

    model = tmp_path / "model"
    shutil.copytree(planted_model[0], model)
    config = json.loads((model / "config.json").read_text())
    config[key] = "kernels-community/flash-attn3"  # transformers would import `kernels` and fetch it
    (model / "config.json").write_text(json.dumps(config))
    loaded = load_pretrained(architecture_of("llama", "model"), model)
    assert loaded.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("shard", ["../outside/victim.safetensors", "/etc/passwd", "sub/../../x.safetensors",
                                   "..\\\\x.safetensors"])
def test_an_index_naming_a_shard_outside_the_model_directory_is_refused_before_loading(planted_model, tmp_path,
                                                                                      shard):
    import shutil

    from icd_workload_hf.directory import check_weights

    from icd_core import InputDataError

    model = tmp_path / "model"
    shutil.copytree(planted_model[0], model)
    victim = tmp_path / "outside" / "victim.safetensors"
    victim.parent.mkdir()
    shutil.copy(model / "model.safetensors", victim)  # a real file there: only the name decides
    (model / "model.safetensors").rename(model / "part1.safetensors")
    index = {"metadata": {}, "weight_map": {"model.norm.weight": "part1.safetensors", "lm_head.weight": shard}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InputDataError, match=r"model\.safetensors\.index\.json: weight_map names .* not a file inside"):
        check_weights(model)


def test_a_real_sharded_checkpoint_still_passes_the_shard_check(tmp_path):
    import torch
    import transformers as T
    from icd_workload_hf.directory import check_weights

    config = T.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=128)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        T.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "m", max_shard_size="50KB")
    assert len(list((tmp_path / "m").glob("*.safetensors"))) > 1
    check_weights(tmp_path / "m")


@pytest.mark.parametrize("change, expected", [
    ({"num_hidden_layers": 4}, r"missing from the checkpoint \(first: model\.layers\.2\."),
    ({"intermediate_size": 256}, r"of another shape \(first: model\.layers\.0\.mlp\."),
    ({"num_hidden_layers": 1}, r"not in the model \(first: model\.layers\.1\."),
])
def test_a_config_that_disagrees_with_the_weights_is_refused_by_tensor_name(planted_model, tmp_path, change,
                                                                             expected):
    import shutil

    from icd_workload_hf.architectures import architecture_of
    from icd_workload_hf.directory import load_pretrained

    from icd_core import InputDataError

    model = tmp_path / "model"
    shutil.copytree(planted_model[0], model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(InputDataError, match=r"config\.json and the weights disagree: .*" + expected) as err:
        load_pretrained(architecture_of("llama", "model"), model)
    assert "\n" not in str(err.value)


def _export_target(tmp_path: Path, kind: str) -> tuple[str, list[str]]:
    """An --export target of the given kind, and extra arguments."""
    if kind == "empty":
        return "", []
    if kind == "dangling symlink":
        (tmp_path / "link").symlink_to(tmp_path / "nowhere")
        return str(tmp_path / "link"), []
    if kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        return str(tmp_path / "file" / "out"), []
    return str(tmp_path / "out"), ["--export-arm", "bogus"]


@pytest.mark.parametrize("kind, expected", [
    ("empty", "--export: an empty path"), ("dangling symlink", "is a symbolic link"),
    ("parent is a file", "is not a directory"), ("bogus arm", "--export-arm bogus: not an arm"),
])
def test_a_bad_export_target_is_refused_before_the_run(tmp_path, kind, expected):
    from .conftest import run_icd

    target, extra = _export_target(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_icd("run", "--workload", "mock", "--adapter", "sparsity:2:4", "--out-dir", str(tmp_path / "runs"),
                   "--export", target, *extra, cwd=tmp_path, timeout=60)
    assert done.code == 2 and expected in done.error, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory, nothing written


def test_an_export_target_under_new_directories_is_accepted(tmp_path):
    from icd_core.run.export import check_out

    assert check_out(tmp_path / "a" / "b" / "model", "--export") == tmp_path / "a" / "b" / "model"
    assert not (tmp_path / "a").exists()  # nothing is created before the export itself

