"""``icd plugins new KIND NAME``: a plugin distribution that installs, is listed, passes
``icd plugins check`` and its own tests out of the box — a working example to edit.

Each kind gets a small real component: an ``adapter`` that zeroes the smallest weights read
along each permutation group (with options and a recorded no-op), a ``measure`` that reports
the bytes of the state's weights, a ``solver`` that orders dimensions by weighted degree, and a
``graph`` source that joins dimensions whose weight columns point the same way.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from icd_core.contract.errors import UsageError

KINDS = ("adapter", "measure", "solver", "graph")

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "icd $kind '$name'"
requires-python = ">=3.10"
dependencies = ["icd-co"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points.icd]
$name = "$package.plugin"

[tool.setuptools]
packages = ["$package"]
''')

README = Template('''\
# $dist

An icd $kind: `$usage`. Install with `pip install .` (it registers the entry point `$name` in
group `icd`), then `icd plugins list` shows it and `icd plugins check` checks it. Test with
`pytest tests`. The hooks, records and their rules: docs/plugins.md in the icd repository.
''')

PLUGINS = {
    "adapter": Template('''\
"""``--adapter $name:0.5``: zero the given share of the smallest-magnitude weights read
along each permutation group (their input dimension)."""

from __future__ import annotations

import attrs
import numpy as np

from icd_core import TransformMeta, TransformResult, hookimpl
from icd_core.toolkit import between, no_target_reason, tensors

NAME = "$name"


@attrs.frozen
class Options:
    """``rate``: the share of each weight's entries set to zero (0 prunes nothing)."""

    rate: float = attrs.field(default=0.5, validator=between(0.0, 1.0))


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="zero the smallest weights (example)", options=Options,
                 positional=("rate",))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    names = sorted({m.tensor for g in state.groups for m in g.members if m.role == "in"})
    if not names or adapter.options.rate == 0:
        reason = "rate 0 prunes nothing" if names else no_target_reason([])
        return TransformResult(state=state, meta=TransformMeta.skipped(NAME, adapter.text, reason))
    updates = {}
    for name in names:
        w = tensors.to_numpy(state.tensors[name])
        cut = np.quantile(np.abs(w), adapter.options.rate)
        updates[name] = np.where(np.abs(w) <= cut, 0, w).astype(w.dtype)  # a new array: never edit the input
    zeroed = sum(int((u == 0).sum()) for u in updates.values())
    meta = TransformMeta(adapter=NAME, spec=adapter.text, stats={"tensors": names, "zeroed": zeroed})
    return TransformResult(state=state.with_transform(updates, meta), meta=meta)
'''),
    "measure": Template('''\
"""``--measure $name``: the bytes of the state's weights (computed, not timed)."""

from __future__ import annotations

from icd_core import Figure, hookimpl
from icd_core.toolkit import tensors

NAME = "$name"


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="bytes of the weights (example)", provides=("weight_bytes",))


@hookimpl
def icd_measure(ctx, measure, state):
    total = sum(tensors.to_numpy(t).nbytes for name, t in state.tensors.items() if not name.startswith("cache."))
    return {"weight_bytes": Figure(float(total), "computed:weight-bytes", unit="B", better="lower")}
'''),
    "solver": Template('''\
"""``--solver $name``: dimensions ordered by weighted degree in W (heaviest first)."""

from __future__ import annotations

import time

import numpy as np

from icd_core import FitResult, hookimpl
from icd_core.toolkit import fit_stats

NAME = "$name"


@hookimpl
def icd_register(registry):
    registry.add("solver", NAME, summary="order by weighted degree (example)")


@hookimpl
def icd_fit_permutation(ctx, solver, w, constraints):
    t0 = time.perf_counter()
    if constraints.supernode > 1 or constraints.fixed:  # this example does not move tied or fixed dims
        perm = np.arange(w.n)
    else:
        degree = np.asarray(w.matrix.sum(axis=1)).ravel()
        perm = np.argsort(-degree, kind="stable")
    stats = fit_stats(w.matrix, perm, w.block, method=NAME, time_s=time.perf_counter() - t0,
                      kept_order=bool(constraints.supernode > 1 or constraints.fixed))
    return FitResult(perm=perm, stats=stats)
'''),
    "graph": Template('''\
"""``--graph $name``: W joins dimensions whose weight columns point the same way (|cosine|
of the columns of each member read along the group, top 8 per dimension)."""

from __future__ import annotations

import numpy as np

from icd_core import GraphW, hookimpl
from icd_core.toolkit import symmetric_csr, tensors

NAME = "$name"
TOP = 8


@hookimpl
def icd_register(registry):
    registry.add("graph", NAME, summary="weight-column similarity (example)")


@hookimpl
def icd_build_w(ctx, source, state, group):
    columns = []
    for member in group.members:
        w = tensors.to_numpy(state.tensors[member.tensor]).astype(np.float64)
        if w.shape[member.axis] != group.size:
            continue  # a member indexed in slices (attention heads, rotary halves): left out here
        columns.append(np.moveaxis(w, member.axis, 0).reshape(group.size, -1))
    x = np.concatenate(columns, axis=1)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = np.abs(x @ x.T)
    np.fill_diagonal(sim, 0)
    top = np.argsort(-sim, axis=1)[:, :TOP]
    rows = np.repeat(np.arange(group.size), top.shape[1])
    cols = top.ravel()
    matrix = symmetric_csr(rows, cols, sim[rows, cols].astype(np.float32), group.size)
    return GraphW(matrix=matrix, meta={"source": NAME, "top": TOP})
'''),
}

TESTS = {
    "adapter": '''
def test_it_zeroes_the_share_asked_for_and_keeps_its_input():
    manager = fresh_manager(plugin)
    state = mock_state()
    before = state.digest()
    spec = resolve(manager.registry, "adapter", f"{plugin.NAME}:0.25")
    result = plugin.icd_apply_transform(context(manager), spec, state, state.layout_for({}))
    assert state.digest() == before
    zeroed = result.meta.stats["zeroed"]
    total = sum(state.tensors[n].size for n in result.meta.stats["tensors"])
    assert 0.24 <= zeroed / total <= 0.26
''',
    "measure": '''
def test_it_reports_the_bytes_of_the_weights():
    manager = fresh_manager(plugin)
    state = mock_state()
    spec = resolve(manager.registry, "measure", plugin.NAME)
    figure = plugin.icd_measure(context(manager), spec, state)["weight_bytes"]
    assert figure.value == sum(t.nbytes for t in state.tensors.values()) and figure.source.startswith("computed:")
''',
    "solver": '''
def test_it_puts_the_heaviest_dimension_first():
    from icd_core.toolkit import symmetric_csr
    from icd_core import Constraints, GraphW

    manager = fresh_manager(plugin)
    w = symmetric_csr(np.array([0, 0, 1]), np.array([3, 2, 3]), np.array([5.0, 1.0, 1.0], dtype=np.float32), 4)
    spec = resolve(manager.registry, "solver", plugin.NAME)
    fit = plugin.icd_fit_permutation(context(manager), spec, GraphW(matrix=w, meta={}), Constraints())
    assert sorted(fit.perm) == [0, 1, 2, 3] and fit.perm[0] in (0, 3)
''',
    "graph": '''
def test_w_is_symmetric_with_a_zero_diagonal():
    manager = fresh_manager(plugin)
    state = mock_state()
    group = state.groups[0]
    spec = resolve(manager.registry, "graph", plugin.NAME)
    w = plugin.icd_build_w(context(manager), spec, state, group).matrix
    assert w.shape == (group.size, group.size) and abs(w - w.T).max() == 0 and w.diagonal().max() == 0
''',
}

TEST_HEAD = Template('''\
"""Tests of $dist, with the helpers of icd_core.testing."""

import numpy as np

from icd_core.testing import MockOptions, build_mock_state, check_conformance, context, fresh_manager, resolve

from $package import plugin


def mock_state():
    """The mock workload's state: a small two-layer MLP, one permutation group."""
    return build_mock_state(MockOptions(hidden=64, d_in=32, d_out=32, tokens=16), np.random.default_rng(0))


def test_it_keeps_the_contract():
    manager = fresh_manager(plugin)
    assert check_conformance(manager, plugin) == []
''')

USAGE = {"adapter": "icd run --adapter {name}:0.5", "measure": "icd run --measure {name}",
         "solver": "icd run --solver {name}", "graph": "icd run --graph {name}"}


def scaffold(kind: str, name: str, directory: Path) -> Path:
    """Write ``directory/icd-KIND-NAME/`` and return its path; refuses to overwrite."""
    if kind not in KINDS:
        raise UsageError(f"plugins new: KIND {kind!r}: expected one of {', '.join(KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise UsageError(f"plugins new: NAME {name!r}: expected lower-case letters, digits and _ "
                         f"(a component name and a Python identifier), starting with a letter")
    dist = f"icd-{kind}-{name.replace('_', '-')}"
    package = f"icd_{kind}_{name}"
    root = directory / dist
    if root.exists():
        raise UsageError(f"plugins new: {root} already exists (nothing was written)")
    values = {"dist": dist, "kind": kind, "name": name, "package": package,
              "usage": USAGE[kind].format(name=name)}
    files = {
        "pyproject.toml": PYPROJECT.substitute(values),
        "README.md": README.substitute(values),
        f"{package}/__init__.py": f'"""{dist}: an icd {kind}."""\n',
        f"{package}/plugin.py": PLUGINS[kind].substitute(values),
        "tests/test_plugin.py": TEST_HEAD.substitute(values) + "\n" + TESTS[kind],
    }
    staging = directory / f".{dist}.partial"
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        staging.rename(root)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
