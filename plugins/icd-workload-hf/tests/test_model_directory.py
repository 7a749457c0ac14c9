"""``icd run --model DIR`` and ``--export`` on tiny random models of every listed family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

ICD = [sys.executable, "-m", "icd_core.cli"]
FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "bert", "roberta", "distilbert", "gpt2", "opt", "mamba")
ENCODERS = ("bert", "roberta", "distilbert")
# the end-to-end export of these runs in .ci/run (pytest -m slow): each shares its code path with one that
# make test keeps (mistral, qwen2, qwen3: llama's KV-cache decoder; roberta, distilbert: bert's encoder)
SAME_PATH = ("mistral", "qwen2", "qwen3", "roberta", "distilbert")
EXPORTED = [pytest.param(f, marks=pytest.mark.slow) if f in SAME_PATH else f for f in FAMILIES]


def tiny_config(family: str):
    import transformers as T

    common = dict(vocab_size=128)
    llama = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, **common)
    return {
        "llama": lambda: T.LlamaConfig(**llama),
        "mistral": lambda: T.MistralConfig(**llama),
        "qwen2": lambda: T.Qwen2Config(**llama),
        "qwen3": lambda: T.Qwen3Config(head_dim=32, **llama),
        "bert": lambda: T.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                     max_position_embeddings=256, **common),
        "roberta": lambda: T.RobertaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=4, max_position_embeddings=256, **common),
        "distilbert": lambda: T.DistilBertConfig(dim=64, hidden_dim=128, n_layers=2, n_heads=4,
                                                 max_position_embeddings=256, **common),
        "gpt2": lambda: T.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **common),
        "opt": lambda: T.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                                   word_embed_proj_dim=64, max_position_embeddings=256, **common),
        "mamba": lambda: T.MambaConfig(hidden_size=64, num_hidden_layers=2, state_size=8, expand=2, **common),
    }[family]()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Each family built from its config (random weights, offline) and saved with save_pretrained."""
    import transformers as T

    root = tmp_path_factory.mktemp("models")
    out = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for family in FAMILIES:
            auto = T.AutoModel if family in ENCODERS else T.AutoModelForCausalLM
            auto.from_config(tiny_config(family)).save_pretrained(root / family)
            out[family] = root / family
    return out


def icd(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ICD, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "TQDM_DISABLE": "1"})


def load(path: Path, groups: str, **options):
    from icd_workload_hf.directory import load_model_directory
    from icd_workload_hf.plugin import ModelOptions

    opts = ModelOptions(path=str(path), groups=groups, batch=2, seq=32, prompt=32, decode=8, **options)
    return load_model_directory(opts, 0, "dense", lambda _message: None)


ALL_KINDS = {"llama": "ffn,heads,hidden,kv", "mistral": "ffn,heads,hidden,kv", "qwen2": "ffn,heads,hidden,kv",
             "qwen3": "ffn,heads,hidden,kv", "bert": "ffn,heads,hidden", "roberta": "ffn,heads,hidden",
             "distilbert": "ffn,heads", "gpt2": "ffn,heads", "opt": "ffn,heads", "mamba": "inner,state,hidden"}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_random_permutation_of_every_group_keeps_the_function(models, family):
    state = load(models[family], ALL_KINDS[family])
    reference = state.run()
    rng = np.random.default_rng(1)
    permuted = state
    for group in state.groups:
        permuted = permuted.permuted(group.name, rng.permutation(group.size))
    assert len(state.groups) >= 2
    assert state.workload.max_rel_diff(permuted.run(), reference) <= 1e-5


@pytest.mark.parametrize("family", EXPORTED)
def test_run_export_and_reload_without_icd(models, family, tmp_path):
    groups = "inner" if family == "mamba" else "ffn"
    out = tmp_path / "exported"
    done = icd("run", "--model", str(models[family]), "--workload", f"model:groups={groups}", "--adapter", "sparsity:2:4",
               "--out-dir", "runs", "--name", family, "--export", str(out),
               "--set", "pipeline.random_orders=0", cwd=tmp_path)  # the export, not the control, is tested here
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seeded random token ids stand in for text" in done.stderr  # no tokenizer files: said so
    metrics = json.loads((tmp_path / "runs" / family / "metrics.json").read_text())
    assert metrics["equivalence"]["ok"] and metrics["equivalence"]["max_rel_diff"] <= 1e-5
    layout = json.loads((out / "icd_layout.json").read_text())
    assert layout["written"]["reload_check"]["max_rel_diff"] <= 1e-5
    on_disk = sum(f.stat().st_size for f in out.iterdir() if f.name != "icd_layout.json")
    assert layout["written"]["bytes_on_disk"] == on_disk and 0.5 < layout["written"]["size_vs_float32"] < 1.5
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # readable like save_pretrained's (0755 under 022)
    assert "× the model in float32)" in done.stdout  # float32 weights: about the state's own size
    assert Path(layout["source"]["run_dir"]).name == family  # the committed run, not its staging directory
    assert not any(g["identity"] for g in layout["groups"].values())  # the layout really moved
    from safetensors.torch import load_file

    weights = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
    axis = {m["tensor"]: m["axis"] for g in layout["groups"].values() for m in g["members"] if m["role"] == "in"}
    (transform,) = layout["transforms"]
    axis.update({name: 0 if family == "gpt2" else 1 for name in transform["natural_order"]})  # Conv1D: in × out
    pruned = [name for name in transform["tensors"] if name in weights]
    assert len(pruned) == transform["weights"]["targeted"] > transform["weights"]["in_layout_order"] > 0
    for name in pruned:  # exact 2:4 along the input axis, in memory order
        rows = weights[name].movedim(axis[name], -1)
        assert int((rows.reshape(*rows.shape[:-1], -1, 4) != 0).sum(-1).max()) <= 2, name
    # and independently of the export's own check: the saved weights are the state's
    state = load(models[family], groups)
    assert set(weights) >= {k for k in state.tensors if not k.startswith("cache.")}


def test_the_reload_check_fails_on_weights_that_differ(models, tmp_path):
    from icd_workload_hf.export import export_hf, judged_batch, reload_check

    from icd_core import InputDataError

    state = load(models["gpt2"], "ffn")
    out = tmp_path / "x"
    out.mkdir()
    export_hf(state, out, "hf")
    batch = judged_batch(state.workload)
    expected = state.workload.module(**batch).logits.detach()
    with pytest.raises(InputDataError, match="differ from the run's state"):
        reload_check(out, "AutoModelForCausalLM", batch, expected * 1.01)


def test_a_group_missing_a_member_is_named(models, tmp_path, monkeypatch):
    from icd_workload_hf import architectures as archs

    import icd

    llama = next(a for a in archs.BUILTIN if a.family == "llama")

    def broken(config, kinds, shapes):
        specs = llama.groups(config, kinds, shapes)
        first = specs[0]
        group = attrs.evolve(first.group, members=first.group.members[:-1])  # down_proj's input axis forgotten
        return [attrs.evolve(first, group=group), *specs[1:]]

    monkeypatch.setattr(archs, "BUILTIN", (attrs.evolve(llama, groups=broken),))
    result = icd.run(model=str(models["llama"]), out_dir=tmp_path, name="broken",
                     **{"pipeline.repeats": 3, "pipeline.warmup_iter": 1})
    assert not result.ok
    assert "(llama): group L0.ffn alone: max relative difference" in result.error


def test_bad_directories_say_what_is_wrong(models, tmp_path):
    (tmp_path / "empty").mkdir()
    done = icd("run", "--model", str(tmp_path / "empty"), cwd=tmp_path)
    assert done.returncode != 0 and "no config.json" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    alien = tmp_path / "alien"
    alien.mkdir()
    (alien / "config.json").write_text(json.dumps({"model_type": "t5"}))
    done = icd("run", "--model", str(alien), cwd=tmp_path)
    assert "model_type 't5' is not a known architecture (known: bert, distilbert, gpt2, llama, mamba" in done.stderr
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text((models["llama"] / "config.json").read_text())
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    done = icd("run", "--model", str(sharded), cwd=tmp_path)
    assert "shard model-00001-of-00002.safetensors named in model.safetensors.index.json is missing" in done.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    done = icd("run", "--model", str(models["gpt2"]), "--export", str(taken), "--out-dir", "taken-runs", cwd=tmp_path)
    assert done.returncode == 2 and "exists and is not an empty directory" in done.stderr
    assert (taken / "keep.txt").read_text() == "mine" and not (tmp_path / "taken-runs").exists()  # refused before the run
    done = icd("run", "--model", str(models["gpt2"]), "--workload", "model:groups=hidden", cwd=tmp_path)
    assert "model (gpt2).groups: ['hidden'] not among ffn, heads" in done.stderr


@pytest.mark.slow  # two full runs (~22 s): in .ci/run
def test_export_rederives_a_finished_run(models, tmp_path):
    """The model given as a relative path; the export run from another directory."""
    import shutil

    shutil.copytree(models["opt"], tmp_path / "opt-model")
    done = icd("run", "--model", "opt-model", "--adapter", "sparsity:2:4", "--out-dir", "runs", "--name", "opt",
               "--set", "rollback.enabled=false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = icd("export", str(tmp_path / "runs" / "opt"), "--out", "x", "--arm", "bogus", cwd=elsewhere)
    assert done.returncode == 2 and done.stderr.strip() == (
        "icd: error: --arm bogus: not an arm (expected one of pre, identity, linear, iterative)")
    done = icd("export", str(tmp_path / "runs" / "opt"), "--out", str(tmp_path / "opt-linear"), "--arm", "linear",
               cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    layout = json.loads((tmp_path / "opt-linear" / "icd_layout.json").read_text())
    recorded = json.loads((tmp_path / "runs" / "opt" / "metrics.json").read_text())
    assert layout["source"]["arm"] == "linear" and layout["source"]["run"] == "opt"
    assert layout["source"]["state_digest"] == recorded["results"]["linear"]["state_digest"]
    assert not list(tmp_path.glob(".opt-linear.*"))  # no staging directory left behind
    done = icd("export", str(tmp_path / "runs" / "opt"), "--out", str(tmp_path / "opt-kept"), cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    layout = json.loads((tmp_path / "opt-kept" / "icd_layout.json").read_text())
    assert layout["source"]["arm"] == "iterative" and layout["source"]["why"] == "the state the run kept after its verdicts"
    assert layout["source"]["state_digest"] == recorded["results"]["iterative"]["state_digest"]
    assert layout["source"]["verdict"] == recorded["verdict"]  # the run's own, not the replay's


def test_smollm2_with_int4_and_a_page_plan_exports_and_reloads(tmp_path):
    """Real weights: SmolLM2's GGUF (dequantised on load), int4 g128 weights and a KV page plan."""
    from icd_adapter_kv import plugin as kv_plugin
    from icd_adapter_quant import plugin as quant_plugin
    from icd_workload_hf import plugin
    from icd_workload_hf.export import export_hf
    from icd_workload_hf.plugin import SmolLM2Options
    from icd_workload_hf.smollm2 import load_smollm2

    from icd_core.testing import context, fresh_manager, resolve

    manager = fresh_manager(plugin, quant_plugin, kv_plugin)
    state = load_smollm2(SmolLM2Options(prompt=256, decode=8, groups="ffn,kv"), 0, backend="paged")
    for spec in ("quant:int4:g128", "kv:pages:16:4"):
        state = manager.call("icd_apply_transform", ctx=context(manager), adapter=resolve(manager.registry, "adapter",
                                                                                          spec),
                                                    state=state, layout=state.layout_for({})).state
    record = export_hf(state, tmp_path, "hf")
    assert record["reload_check"]["max_rel_diff"] <= 1e-5 and record["tokenizer"] == "saved"
    assert any("int4" in note and "dequantised" in note for note in record["notes"])
    plan = json.loads((tmp_path / "kv_plan.json").read_text())
    assert plan["page"] == 16 and len(plan["heads"]) == 30 * 3
    assert sorted(plan["heads"]["0.0"]["token_order"]) == list(range(256))
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "model.safetensors")
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(saved[name], state.tensors[name])  # the int4 grid's values, bit for bit
    assert "icd" not in (tmp_path / "config.json").read_text()


def test_smollm2_int4_exports_as_compressed_tensors(tmp_path):
    """Packed int4 g64 in compressed-tensors' format, groups contiguous in icd's order (no g_idx):
    the library decompresses it to the run's weights, and transformers loads it."""
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.compressors import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from icd_adapter_quant import plugin as quant_plugin
    from icd_workload_hf import plugin
    from icd_workload_hf.export import export_hf
    from icd_workload_hf.plugin import SmolLM2Options
    from icd_workload_hf.smollm2 import load_smollm2
    from safetensors.torch import load_file

    from icd_core.testing import context, fresh_manager, resolve

    manager = fresh_manager(plugin, quant_plugin)
    state = load_smollm2(SmolLM2Options(prompt=64, decode=8, groups="ffn"), 0)
    state = manager.call("icd_apply_transform", ctx=context(manager), adapter=resolve(manager.registry, "adapter",
                                                                                      "quant:int4:g64"),
                                                state=state, layout=state.layout_for({})).state
    record = export_hf(state, tmp_path, "compressed-tensors")
    assert record["compressed_tensors"]["decompress_check"]["max_rel_diff"] <= 1e-6
    assert record["reload_check"]["max_rel_diff"] <= 1e-5  # transformers' own compressed-tensors loader
    compressed = record["compressed_tensors"]
    assert compressed["quantized_modules"] == 210 and compressed["linears_left_unquantized"] == ["lm_head"]
    stored = record["transformed_weights"]
    assert stored["count"] == 210 and stored["vs_float32"] <= 0.3  # issue 38: packed int4 and its scales
    config = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    scheme = QuantizationConfig.model_validate(config).config_groups["group_0"]
    assert config["format"] == "pack-quantized" and scheme.weights.group_size == 64
    saved = load_file(tmp_path / "model.safetensors")
    name = "model.layers.3.mlp.down_proj"
    assert saved[f"{name}.weight_packed"].dtype == torch.int32 and f"{name}.weight_g_idx" not in saved
    local = {k.split(".")[-1]: v for k, v in saved.items() if k.startswith(name + ".")}
    quantized = {k.rsplit(".", 1)[0] for k in saved if k.endswith(".weight_packed")}
    assert len(quantized) == 210 and stored["bytes"] == sum(
        v.nbytes for k, v in saved.items() if k.rsplit(".", 1)[0] in quantized)
    weight = PackedQuantizationCompressor.decompress(local, scheme)["weight"].float()
    reference = state.tensors[f"{name}.weight"]
    assert float((weight - reference).abs().max() / reference.abs().max()) <= 1e-6


def test_minilm_exports_with_its_tokenizer(tmp_path):
    from icd_workload_hf.export import export_hf
    from icd_workload_hf.models import load_minilm
    from icd_workload_hf.plugin import MiniLMOptions

    state = load_minilm(MiniLMOptions(batch=2, seq=16, groups="ffn,hidden", tasks=False), 0)
    rng = np.random.default_rng(0)
    for group in state.groups:
        state = state.permuted(group.name, rng.permutation(group.size))
    record = export_hf(state, tmp_path, "hf")
    assert record["reload_check"]["max_rel_diff"] <= 1e-5 and (tmp_path / "tokenizer.json").is_file()
    assert any("last_hidden_state comes out in the order" in note for note in record["notes"])


# -- the whole model: targets / ignore (issue 38) ------------------------------------------------
LINEARS = {"qwen2": 14, "bert": 12, "gpt2": 8, "opt": 12}  # Linears inside the layers of the tiny models


def _manager():
    from icd_adapter_quant import plugin as quant
    from icd_adapter_sparsity import plugin as sparsity

    from icd_core.testing import fresh_manager

    return fresh_manager(quant, sparsity)


def _adapter(spec: str):
    from icd_core.testing import resolve

    return resolve(_manager().registry, "adapter", spec).options


def _apply(spec: str, state):
    from icd_core.testing import context, resolve

    manager = _manager()
    return manager.call("icd_apply_transform", ctx=context(manager), adapter=resolve(manager.registry, "adapter", spec),
                        state=state, layout=state.layout_for({g.name: 16 for g in state.groups}))


@pytest.mark.parametrize("family", sorted(LINEARS))
def test_two_four_prunes_every_linear_in_the_layers_and_nothing_else(models, family):
    state = load(models[family], "ffn")
    result = _apply("sparsity:2:4", state)
    stats = result.meta.stats
    assert stats["weights"] == {"targeted": LINEARS[family], "in_layout_order": 2,
                                "natural_order": LINEARS[family] - 2}
    linears = state.workload.linear_weights
    assert sorted(stats["tensors"]) == sorted(linears)
    for name, axis in linears.items():  # exact 2:4 along each weight's input axis
        rows = torch.as_tensor(result.state.tensors[name]).movedim(axis, -1)
        assert int((rows.reshape(*rows.shape[:-1], -1, 4) != 0).sum(-1).max()) <= 2, name
    untouched = [k for k in state.tensors if k not in linears]
    assert untouched and all(torch.equal(result.state.tensors[k], state.tensors[k]) for k in untouched)


@pytest.mark.parametrize("family,kinds,in_layout", [("qwen2", {"ffn", "heads", "hidden"}, 14),
                                                    ("bert", {"ffn", "heads"}, 4)])
def test_default_groups_cover_every_axis_but_an_encoders_output(models, family, kinds, in_layout):
    from icd_workload_hf.plugin import ModelOptions

    assert ModelOptions().groups == "auto"
    state = load(models[family], "auto")
    assert {g.kind for g in state.groups} == kinds  # never kv; an encoder's hidden would permute its output
    weights = _apply("quant:int4:g16", state).meta.stats["weights"]  # head groups are 16 wide here
    assert weights == {"targeted": LINEARS[family], "in_layout_order": in_layout,
                       "natural_order": LINEARS[family] - in_layout}


def test_a_weight_several_groups_run_along_is_quantized_once_after_they_all_moved(models):
    """o_proj (BERT's attention.output.dense) is an input of one group per head: each head may
    regroup its 16 channels, and the weight is quantized once, in the final order — not once
    per head, with the earlier heads' columns quantized again after they moved."""
    from icd_adapter_quant.minmax import quantize_dequantize

    state = load(models["bert"], "heads")
    result = _apply("quant:int4:g8:sort", state)  # two scale groups per 16-wide head
    moved = [g.name for g in state.groups if not np.array_equal(result.state.layout[g.name], np.arange(g.size))]
    assert any(name.endswith(".vo") for name in moved)
    final = state
    for group in state.groups:
        final = final.permuted(group.name, result.state.layout[group.name])
    name = "encoder.layer.0.attention.output.dense.weight"
    expected = quantize_dequantize(final.tensors[name].numpy(), 1, "int4", 8, True)
    assert np.array_equal(result.state.tensors[name].numpy(), expected)


def test_int4_quantizes_every_targeted_linear_and_ignore_leaves_the_rest(models):
    state = load(models["qwen2"], "ffn")
    result = _apply("quant:int4:g32:ignore=re:.*self_attn.*", state)
    linears = state.workload.linear_weights
    attention = [k for k in linears if ".self_attn." in k]
    assert len(attention) == 8 and result.meta.stats["weights"]["targeted"] == 6
    for name in linears:
        w = torch.as_tensor(result.state.tensors[name])
        levels = max(len(torch.unique(run)) for run in w.reshape(w.shape[0], -1, 32).reshape(-1, 32))
        if name in attention:
            assert torch.equal(w, state.tensors[name]), name
        else:
            assert levels <= 16, name  # one int4 scale per row and run of 32 inputs


@pytest.mark.slow  # CLI runs: in .ci/run (pytest -m slow), keeping make test under 12 min
def test_a_group_or_m_that_leaves_targeted_weights_untransformed_is_refused_before_any_work(models, tmp_path):
    from icd_core import ConfigError

    state = load(models["qwen2"], "ffn")  # inputs: 64 wide (q, k, v, o, gate, up), 128 (down)
    with pytest.raises(ConfigError, match=r"^quant: group 128 does not divide the input width of 12 of the 14 targeted "
                                          r"weights \(model\.layers\.0\.self_attn\.q_proj\.weight: 64, …\), which "
                                          r"would stay untransformed: use group 64 or 32, or leave them out with "
                                          r"ignore=$"):
        _adapter("quant:int4:g128").check_state(state)
    _adapter("quant:int4:g128:targets=re:.*down_proj").check_state(state)  # every targeted weight fits
    _adapter("quant:int4:g32").check_state(state)
    with pytest.raises(ConfigError, match=r"^sparsity: m 3 does not divide .* 14 of the 14 .* use m 2, or leave"):
        _adapter("sparsity:1:3").check_state(state)
    done = icd("run", "--model", str(models["qwen2"]), "--adapter", "quant:int4:g100", "--out-dir", "runs",
               cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "quant: group 100 does not divide the input width of 14 of the 14 targeted weights" in done.stderr
    assert "What did layout" not in done.stdout


@pytest.mark.slow  # CLI runs: in .ci/run (pytest -m slow), keeping make test under 12 min
def test_a_backend_is_honoured_or_refused_before_the_model_loads(models, tmp_path):
    from icd_workload_hf.directory import load_model_directory
    from icd_workload_hf.plugin import ModelOptions

    state = load_model_directory(ModelOptions(path=str(models["bert"]), batch=2, seq=16), 0, "bsr", print)
    assert state.workload.backend == "bsr"  # pruned weights then run through BSR kernels (was dense: ignored)
    for family, backend, expected in (
            ("gpt2", "semi", "execution.backend semi: 2:4 semi-structured kernels need CUDA "
                             "(torch.sparse.to_sparse_semi_structured); model (gpt2) runs on cpu"),
            ("llama", "bsr", "execution.backend bsr: model (llama) decodes against its KV cache, whose Linears run "
                             "dense; it reads a layout through --backend paged (KV pages), or runs --backend dense")):
        done = icd("run", "--model", str(models[family]), "--backend", backend, "--adapter", "sparsity:2:4",
                   "--out-dir", "runs", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip() == f"icd: error: {expected}", done.stderr


def test_a_target_pattern_in_a_spec_keeps_its_colon_and_a_bad_one_is_one_line():
    from icd_core import ConfigError

    options = _adapter("sparsity:2:4:targets=re:.*mlp.*,re:.*o_proj:ignore=model.layers.0.mlp.up_proj")
    assert options.targets == ("re:.*mlp.*", "re:.*o_proj") and options.ignore == ("model.layers.0.mlp.up_proj",)
    with pytest.raises(ConfigError, match=r"ignore: 're:\(' is not a regular expression"):
        _adapter("quant:int4:ignore=re:(")
