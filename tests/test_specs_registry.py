"""Component specs and the registry: parsing, validation, did-you-mean, duplicates."""

from __future__ import annotations

import attrs
import pytest

from icd_core.config.validators import positive
from icd_core.contract.errors import ConfigError, PluginError, UnknownComponentError
from icd_core.plugin.registry import Registry, ScopedRegistry
from icd_core.plugin.specs import resolve, split_spec


@attrs.frozen
class NMOptions:
    n: int = attrs.field(default=2, validator=positive())
    m: int = attrs.field(default=4, validator=positive())

    def __attrs_post_init__(self):
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be < m ({self.m})")


@attrs.frozen
class KvOptions:
    block: int = 128
    drop: float = 0.1


@pytest.fixture
def registry():
    reg = Registry()
    scoped = ScopedRegistry(reg, "pkg-a")
    scoped.add("adapter", "sparsity", summary="n:m", options=NMOptions, positional=("n", "m"))
    scoped.add("adapter", "kv", summary="kv", options=KvOptions, positional=("block", "drop"))
    scoped.add("solver", "spectral", summary="s")
    scoped.add("solver", "identity", summary="i")
    return reg


def test_split_spec_types_scalars():
    assert split_spec("kv:128:0.1") == ("kv", [128, 0.1], {})
    assert split_spec("quant:int4:group=32:sym=true") == ("quant", ["int4"], {"group": 32, "sym": True})


def test_positional_and_keyword_specs(registry):
    assert resolve(registry, "adapter", "sparsity:2:4").options == NMOptions(2, 4)
    assert resolve(registry, "adapter", "sparsity:m=8").options == NMOptions(2, 8)
    assert resolve(registry, "adapter", "kv:64:0.25").options == KvOptions(64, 0.25)
    assert resolve(registry, "adapter", {"name": "kv", "block": 32}).options == KvOptions(32, 0.1)
    assert resolve(registry, "adapter", "sparsity").options == NMOptions()


@pytest.mark.parametrize("spec,message", [
    ("sparsity:4:2", "sparsity: n (4) must be < m (2)"),
    ("sparsity:x:4", "sparsity.n: expected an integer, got str ('x')"),
    ("sparsity:0:4", "sparsity.n: must be > 0 (got 0)"),
    ("sparsity:2:4:1", "sparsity: too many positional values [2, 4, 1] (expected: n, m)"),
    ("sparsity:2:n=3", "sparsity: ['n'] given twice"),
    ("sparsity:k=3", "sparsity.k: unknown key (expected one of: n, m)"),
    ("spectral:5", "spectral: solver 'spectral' takes no options"),
])
def test_spec_errors_name_the_field(registry, spec, message):
    kind = "solver" if spec.startswith("spectral") else "adapter"
    with pytest.raises(ConfigError) as err:
        resolve(registry, kind, spec)
    assert str(err.value) == message


def test_unknown_name_suggests_the_closest(registry):
    with pytest.raises(UnknownComponentError) as err:
        resolve(registry, "solver", "spectrl")
    assert str(err.value) == "unknown solver 'spectrl'. Did you mean 'spectral'? Installed: identity, spectral"
    with pytest.raises(UnknownComponentError, match="^unknown adapter 'zzz'. Installed: kv, sparsity$"):
        resolve(registry, "adapter", "zzz")


def test_duplicate_names_are_an_error_naming_both(registry):
    ScopedRegistry(registry, "pkg-b").add("adapter", "sparsity", summary="again")
    assert registry.conflicts() == {("adapter", "sparsity"): ["pkg-a", "pkg-b"]}
    with pytest.raises(PluginError, match="provided by both pkg-a and pkg-b"):
        registry.get("adapter", "sparsity")


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "optimizer", "name": "x", "summary": "s"}, "kind must be one of"),
    ({"kind": "solver", "name": "Bad Name", "summary": "s"}, "name must match"),
    ({"kind": "solver", "name": "x", "summary": ""}, "summary must be one non-empty line"),
    ({"kind": "solver", "name": "x", "summary": "s", "options": dict}, "options must be an attrs class"),
    ({"kind": "adapter", "name": "x", "summary": "s", "options": KvOptions, "positional": ("size",)},
     "positional names ['size'] are not option fields"),
])
def test_component_declarations_are_validated(kwargs, message):
    with pytest.raises(PluginError) as err:
        ScopedRegistry(Registry(), "p").add(**kwargs)
    assert message in str(err.value)


def test_availability_is_checked_once_and_never_raises():
    calls = []

    def probe():
        calls.append(1)
        raise OSError("boom")

    component = ScopedRegistry(Registry(), "p").add("measure", "m", summary="s", check=probe)
    assert component.status == "unavailable: availability check failed: OSError: boom"
    assert component.status.startswith("unavailable") and calls == [1]


def test_auto_picks_the_usable_component_that_declares_the_highest_preference():
    """The core names no plugin: ``auto`` is whatever installed component prefers itself most."""
    from icd_core.config.files import load_config
    from icd_core.run.selection import select

    reg = Registry()
    scoped = ScopedRegistry(reg, "p")
    scoped.add("solver", "fallback", summary="s", preference=0)
    scoped.add("solver", "strong", summary="s", preference=10)
    scoped.add("solver", "broken", summary="s", preference=99, check=lambda: "missing library")
    scoped.add("solver", "plain", summary="s")  # no preference: only when named
    assert reg.preferred("solver") == "strong"
    scoped.add("workload", "w", summary="s")
    scoped.add("measure", "wallclock", summary="s")
    with pytest.raises(ConfigError, match=r"^workload: auto, but no installed workload declares a preference; name one \(w\)"):
        select(load_config(cli={"measure.use": ["wallclock"]}), reg)
    chosen = select(load_config(cli={"workload": "w", "measure.use": ["wallclock"]}), reg)
    assert chosen.solver.name == "strong" and chosen.config.solver.name == "strong"
