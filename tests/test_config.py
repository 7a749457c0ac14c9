"""Config: files in three formats, overrides, and errors that name the dotted path."""

from __future__ import annotations

import json

import pytest

from icd_core.config.files import dump_yaml, load_config, parse_override
from icd_core.config.schema import Config
from icd_core.contract.errors import ConfigError


def test_defaults_are_the_product_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.pipeline.mode == "compare"
    assert (cfg.gates.latency_pct, cfg.gates.l2_pp, cfg.gates.ept_pct, cfg.gates.quality_drop_pp) == (-20, 10, -15, 0.1)


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "pipeline:\n  mode: linear\n  repeats: 7\nsolver:\n  time_budget_s: 2.5\n"
              "transform:\n  sparsity: '2:4'\n  quant: int8\n"),
    (".json", json.dumps({"pipeline": {"mode": "linear", "repeats": 7}, "solver": {"time_budget_s": 2.5},
                          "transform": {"sparsity": "2:4", "quant": "int8"}})),
    (".toml", "[pipeline]\nmode = 'linear'\nrepeats = 7\n[solver]\ntime_budget_s = 2.5\n"
              "[transform]\nsparsity = '2:4'\nquant = 'int8'\n"),
])
def test_three_file_formats_read_alike(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.pipeline.mode == "linear" and cfg.pipeline.repeats == 7
    assert cfg.solver.time_budget_s == 2.5
    assert cfg.transform.chain() == ["sparsity:2:4", "quant:int8"]


def test_overrides_apply_after_file_and_cli(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nsolver: {time_budget_s: 9}\n")
    cfg = load_config(path, ["solver.time_budget_s=1.5", "measure.use=[wallclock]"], cli={"seed": 5})
    assert (cfg.seed, cfg.solver.time_budget_s, cfg.measure.use) == (5, 1.5, ["wallclock"])


@pytest.mark.parametrize("override,message", [
    ("solver.time_budget_s=-1", "--set: solver.time_budget_s: must be > 0 (got -1.0)"),
    ("solver.budget=3", "--set: solver.budget: unknown key (expected one of: name, time_budget_s"),
    ("pipeline.mode=fast", "--set: pipeline.mode: must be one of 'linear', 'iterative', 'compare' (got 'fast')"),
    ("pipeline.repeats=many", "--set: pipeline.repeats: expected an integer, got str ('many')"),
    ("graph.mock.noise=1.5", "--set: graph.mock.noise: must be between 0.0 and 1.0 (got 1.5)"),
    ("solver.block=24", "--set: solver.block: must be a power of two (got 24)"),
    ("transform.adapters=[3]", "--set: transform.adapters[0]: expected 'name:option…' or a table"),
    ("report=out", "--set: report: expected a table of keys, got str ('out')"),
])
def test_bad_values_name_the_dotted_path(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert str(err.value).startswith(message)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pipeline:\n  mode: linear\n  repeets: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: pipeline\.repeets: unknown key"):
        load_config(path)


def test_unparseable_files_give_one_line(tmp_path):
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("pipeline:\n  mode: [linear\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+: invalid YAML"):
        load_config(bad_yaml)
    bad_json = tmp_path / "c.json"
    bad_json.write_text('{"seed": 1,}')
    with pytest.raises(ConfigError, match=r"c\.json: line 1: invalid JSON"):
        load_config(bad_json)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    other = tmp_path / "c.ini"
    other.write_text("x")
    with pytest.raises(ConfigError, match="unknown config format '.ini'"):
        load_config(other)


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("name=x=y") == ("name", "x=y")
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_override("novalue")


def test_spec_values_accept_strings_and_tables():
    cfg = load_config(overrides=["transform.adapters=[sparsity:2:4, {name: quant, dtype: int4, group: 32}]"])
    assert cfg.transform.adapters == ["sparsity:2:4", {"name": "quant", "dtype": "int4", "group": 32}]


def test_print_config_round_trips():
    cfg = load_config(overrides=["seed=4", "transform.quant=int8"])
    import yaml

    assert load_config(cli={}) != cfg
    data = yaml.safe_load(dump_yaml(cfg))
    assert data["seed"] == 4 and data["transform"]["quant"] == "int8"
