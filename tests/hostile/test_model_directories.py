"""Hostile model directories (issue 39): what a model directory holds must never run as code."""

from __future__ import annotations

import json
import os
import re
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
                           "--export", str(out), "--set", "pipeline.random_orders=0"], cwd=model,
                          capture_output=True, text=True, timeout=600,
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

    from icd_workload_hf.preflight import check_weights

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
    from icd_workload_hf.preflight import check_weights

    config = T.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=128)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        T.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "m", max_shard_size="50KB")
    assert len(list((tmp_path / "m").glob("*.safetensors"))) > 1
    check_weights(tmp_path / "m")


@pytest.mark.parametrize("change, expected", [
    ({"num_hidden_layers": 4}, r"num_hidden_layers is 4, the weights hold 2 layers"),
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
    if kind == "no format":
        return str(tmp_path / "out"), []
    return str(tmp_path / "out"), ["--export-arm", "bogus"]


@pytest.mark.parametrize("kind, expected", [
    ("empty", "--export: an empty path"), ("dangling symlink", "is a symbolic link"),
    ("parent is a file", "is not a directory"), ("bogus arm", "--export-arm bogus: not an arm"),
    ("no format", "--export: workload 'mock' cannot be exported (its plugin declares no export format)"),
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



def _variant(source: Path, target: Path, **change: object) -> Path:
    """A copy of ``source`` whose config.json has ``change`` applied."""
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.py"))
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **change}))
    return target


@pytest.mark.parametrize("bomb, expected", [
    ("hidden_size", "config.json describes a model of 1,348 MiB in float32, but the weights hold 0.3 MiB"),
    ("tokenizer.json", "tokenizer.json: tokenizer file is 536,870,912 bytes, over the 67,108,864-byte limit"),
    ("calibration", "/dev/zero: is a device; expected a calibration file (a regular file)"),
])
def test_a_memory_bomb_costs_one_line_and_no_memory(planted_model, tmp_path, bomb, expected):
    """The CLI under a 2 GiB address-space limit: refused in one line, peak well under 1 GiB."""
    from .conftest import run_icd

    change = {"hidden_size": 250_000} if bomb == "hidden_size" else {}
    model, extra = _variant(planted_model[0], tmp_path / "model", **change), []
    if bomb == "tokenizer.json":
        with open(model / "tokenizer.json", "wb") as sparse:  # 512 MiB of logical size, no blocks
            sparse.truncate(512 << 20)
    if bomb == "calibration":
        extra = ["--workload", "model:calibration=/dev/zero:evaluation=/dev/zero"]
    done = run_icd("run", "--model", str(model), *extra, "--out-dir", str(tmp_path / "runs"), timeout=120)
    assert done.code == 1 and expected in done.error, done.stderr
    assert done.peak_mb < 1024


@pytest.mark.parametrize("change, expected", [
    ({"num_hidden_layers": 100_000}, "num_hidden_layers is 100,000, the weights hold 2 layers"),
    ({"num_attention_heads": 0}, "config.json: num_attention_heads is 0; expected a positive integer"),
    ({"hidden_size": 62, "head_dim": None}, "config.json: hidden_size 62 is not a multiple of num_attention_heads 4"),
    ({"vocab_size": 10_000_000}, "config.json describes a model of 4,883 MiB in float32"),
    ({"max_position_embeddings": 64}, "model.prompt + decode 272: over the model's max_position_embeddings 64"),
])
def test_config_numbers_are_checked_against_the_checkpoint_before_anything_is_built(planted_model, tmp_path,
                                                                                    change, expected):
    from icd_workload_hf.directory import load_model_directory
    from icd_workload_hf.plugin import ModelOptions

    from icd_core import InputDataError

    model = _variant(planted_model[0], tmp_path / "model", **change)
    with pytest.raises(InputDataError, match=re.escape(expected)) as err:
        load_model_directory(ModelOptions(path=str(model)), 0, "dense", print)
    assert "\n" not in str(err.value)


def test_oversized_and_unreadable_model_files_are_refused_by_name(planted_model, tmp_path):
    from icd_workload_hf.directory import load_model_directory
    from icd_workload_hf.plugin import ModelOptions

    from icd_core import InputDataError

    model = _variant(planted_model[0], tmp_path / "model")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputDataError, match=r"fifo: is a FIFO; expected a calibration file \(a regular file\)$"):
        load_model_directory(ModelOptions(path=str(model), calibration=str(fifo), evaluation=str(fifo)), 0, "dense",
                             print)
    with open(model / "config.json", "r+b") as config:
        config.truncate(512 << 20)
    with pytest.raises(InputDataError, match=r"config\.json: config\.json is 536,870,912 bytes, over the "
                                             r"8,388,608-byte limit \(ICD_LIMIT_CONFIG_BYTES\)"):
        load_model_directory(ModelOptions(path=str(model)), 0, "dense", print)
    (model / "config.json").unlink()
    broken = _variant(planted_model[0], tmp_path / "broken")
    (broken / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(InputDataError, match=r"broken: the tokenizer files cannot be loaded \(") as err:
        load_model_directory(ModelOptions(path=str(broken)), 0, "dense", print)
    assert "\n" not in str(err.value)
    _variant(planted_model[0], tmp_path / "m2")
    (tmp_path / "m2" / "model.safetensors").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(InputDataError, match=r"model\.safetensors: not a readable safetensors file \("):
        load_model_directory(ModelOptions(path=str(tmp_path / "m2")), 0, "dense", print)


@pytest.mark.parametrize("metrics, expected", [
    ({"run": {"ok": True}, "results": {}, "final": {"rolled_back": False}}, "metrics.json: run.mode is missing"),
    ({"run": {"ok": False, "error": "boom"}}, "the run failed (boom): nothing to export"),
    ("fifo", "metrics.json: is a FIFO; expected a run's metrics file (a regular file)"),
    ("[1, 2", "metrics.json: line 1: invalid JSON"),
])
def test_icd_export_reads_a_run_s_metrics_bounded_and_names_the_missing_field(tmp_path, metrics, expected):
    from icd_core.cli.export import rederive_and_export
    from icd_core.contract.errors import IcdError

    run = tmp_path / "run"
    run.mkdir()
    if metrics == "fifo":
        os.mkfifo(run / "metrics.json")  # a FIFO would block a plain read forever
    else:
        (run / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
    with pytest.raises(IcdError, match=re.escape(expected)):
        rederive_and_export(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_staging_directory_left_by_a_killed_process_is_swept_by_the_next_one(tmp_path):
    """A child holds a staging directory and is killed with SIGKILL; the next export-style
    staging of the same name removes it, while one a live process holds is left alone."""
    import signal

    from icd_core.contract.staging import held_directory

    holder = ("import sys, time; from pathlib import Path; from icd_core.contract.staging import held_directory\n"
              "with held_directory(Path(sys.argv[1]), sys.argv[2]) as d:\n"
              "    (d / 'weights').write_text('half'); print(d, flush=True); time.sleep(600)\n")
    children = [subprocess.Popen([sys.executable, "-c", holder, str(tmp_path), prefix], stdout=subprocess.PIPE,
                                 text=True) for prefix in (".model.partial-", ".other.partial-")]
    killed, live = (Path(child.stdout.readline().strip()) for child in children)
    children[0].send_signal(signal.SIGKILL)
    children[0].wait(timeout=30)
    assert killed.is_dir()  # what a kill -9 leaves
    try:
        with held_directory(tmp_path, ".model.partial-") as staging:
            assert not killed.exists() and staging.is_dir()
        with held_directory(tmp_path, ".other.partial-"):
            pass
        assert live.is_dir()  # its writer is alive: never touched
        assert not staging.exists()
    finally:
        children[1].kill()
        children[1].wait(timeout=30)


def test_printed_names_are_redacted_and_their_control_characters_escaped(tmp_path):
    """A model directory named with a secret's value and a terminal escape (OSC 0 retitles the
    window): the error line shows both defused; the card and warnings print through the same
    :func:`icd_core.cli.console.echo`."""
    from icd_core.cli.console import shown

    from .conftest import run_icd

    secret = "hf_sekritTOKENvalue1234"
    model = tmp_path / f"m-{secret}-\x1b]0;pwned\x07"
    model.mkdir()
    done = run_icd("run", "--model", str(model), env={"HF_TOKEN": secret}, timeout=60)
    assert done.code == 1 and "no config.json" in done.error
    assert secret not in done.stderr and "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "m-[redacted]-\\x1b]0;pwned\\x07" in done.error
    assert shown("a\tb\nc\rd\x9b") == "a\tb\nc\\x0dd\\x9b"


def test_an_export_format_the_workload_does_not_write_is_refused_before_the_run(planted_model, tmp_path):
    from .conftest import run_icd

    done = run_icd("run", "--model", str(planted_model[0]), "--out-dir", str(tmp_path / "runs"), "--export",
                   str(tmp_path / "out"), "--export-format", "onnx", timeout=60)
    assert done.code == 2 and done.error == "icd: error: --export-format onnx: workload 'model' exports hf, " \
                                            "compressed-tensors", done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
    # a format written from a kind of transform the run does not do: refused before it, not a no-op after
    done = run_icd("run", "--model", str(planted_model[0]), "--out-dir", str(tmp_path / "runs"), "--export",
                   str(tmp_path / "out"), "--export-format", "compressed-tensors", "--adapter", "sparsity:2:4",
                   timeout=60)
    assert done.code == 2 and done.error == (
        "icd: error: --export-format compressed-tensors: workload 'model' writes it from a quant transform, and the "
        "selected adapters (sparsity:2:4) do none (add one: quant)"), done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_a_nan_weight_is_named_not_blamed_on_a_permutation_group(planted_model, tmp_path):
    import torch
    from icd_workload_hf.directory import load_model_directory
    from icd_workload_hf.plugin import ModelOptions
    from safetensors.torch import load_file, save_file

    from icd_core import InputDataError

    model = _variant(planted_model[0], tmp_path / "model")
    tensors = load_file(model / "model.safetensors")
    tensors["model.layers.1.mlp.down_proj.weight"][3, 5] = torch.nan
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(InputDataError, match=r"model: tensor model\.layers\.1\.mlp\.down_proj\.weight holds NaN or inf"):
        load_model_directory(ModelOptions(path=str(model)), 0, "dense", print)


def test_a_workload_whose_own_output_is_not_finite_is_refused_before_any_layout():
    import numpy as np

    from icd_core import InputDataError
    from icd_core.run.pipeline import check_finite
    from icd_core.testing import MockOptions, build_mock_state

    state = build_mock_state(MockOptions(), np.random.default_rng(0))
    check_finite(state, np.ones(3))
    with pytest.raises(InputDataError, match="output holds NaN or inf on its judged batch"):
        check_finite(state, np.array([1.0, np.nan]))


def test_a_full_disk_is_named_before_and_while_exporting(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    import numpy as np

    from icd_core.contract.errors import ArtifactWriteError
    from icd_core.run import export
    from icd_core.testing import MockOptions, build_mock_state

    state = build_mock_state(MockOptions(), np.random.default_rng(0))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(ArtifactWriteError, match=r": 100 bytes free, the export needs about [\d,]+ \(the state's"):
        export.export_state(None, None, state, tmp_path / "out", "hf", {})
    monkeypatch.undo()

    def full(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.dispatch, "export", full)
    with pytest.raises(ArtifactWriteError, match=r"out: cannot write the export \(No space left on device\); "):
        export.export_state(None, None, state, tmp_path / "out", "hf", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging directory left


@pytest.mark.parametrize("content", [b"GGUF\x03\x00\x00\x00\x01", b"GGUF" + bytes(64), b"not a gguf at all"])
def test_a_truncated_or_foreign_gguf_is_one_line(tmp_path, content):
    from icd_workload_hf.smollm2 import load_model

    from icd_core import InputDataError

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(content)
    with pytest.raises(InputDataError, match=r"^model_path .*m\.gguf: cannot load as a GGUF model \(") as err:
        load_model(gguf)
    assert "\n" not in str(err.value)
