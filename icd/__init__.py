"""icd's Python API: the same components as the CLI, called from Python.

``icd`` is the user-facing library; ``icd_core`` stays the plugin authors' package. Every
function loads the installed plugins (as ``icd run`` does) and calls them through the same
hooks; numpy arrays and torch tensors are both accepted and a transformed tensor comes back
of the kind it came in. Errors are the CLI's (:class:`icd_core.IcdError` and subclasses).

>>> import icd
>>> W = icd.build_w("mock", n=256, blocks=16, noise=0.05, seed=0)
>>> W.shape, bool(abs(W - W.T).max() == 0)
((256, 256), True)
>>> pi, stats = icd.fit_permutation(W, time_budget_s=30, solver="spectral")
>>> sorted(pi.tolist()) == list(range(256)), stats["C"] < stats["C_initial"]
(True, True)
>>> import numpy as np
>>> w = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
>>> out, meta = icd.apply_sparsity(w, type="2:4")
>>> int((out.reshape(8, 4, 4) != 0).sum(-1).max()), meta.details["sparsity"]["type"]
(2, '2:4')
>>> q, meta = icd.apply_quant(w, dtype="int8")
>>> bool(np.abs(q - w).max() < 0.05), meta.details["quant"]["dtype"]
(True, 'int8')
>>> keys = np.random.default_rng(1).standard_normal((2, 1024, 64)).astype(np.float32)
>>> (k, v), meta = icd.apply_kvcache((keys, keys * 0.5), block=128, drop=0.5)
>>> k.shape, v.shape, meta.stats["kv"]["blocks_dropped"]
((2, 640, 64), (2, 640, 64), 3)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from icd_core import (
    GroupMember,
    IcdError,
    ModelState,
    PermutationGroup,
    TransformMeta,
    UsageError,
)

__all__ = ["IcdError", "RunArtifacts", "apply_kvcache", "apply_quant", "apply_sparsity", "build_w", "export", "fit_permutation", "run"]


@functools.lru_cache(maxsize=1)
def _manager():
    """The installed plugins, loaded once per process (entry points do not change under it)."""
    from icd_core.plugin.manager import load_plugin_manager

    return load_plugin_manager()


def _context(manager, **settings: Any):
    from icd_core.config.files import load_config
    from icd_core.run.context import RunContext

    return RunContext(config=load_config(cli=settings), registry=manager.registry)


def build_w(source: str = "mock", **cfg: Any) -> sp.csr_matrix:
    """The co-access matrix W (symmetric float32 CSR) from a graph source.

    ``"mock"``: ``n``, ``blocks``, ``noise``, ``seed`` (planted blocks behind a relabelling);
    ``"trace"``: ``path`` (a JSONL access trace), ``n``; any other installed source:
    ``workload`` (a spec, e.g. ``"minilm"``) and ``group`` (default: its first group).
    """
    from icd_core.builtins.graph_mock import planted_blocks
    from icd_core.plugin import dispatch
    from icd_core.plugin.specs import resolve

    if source == "mock":
        unknown = set(cfg) - {"n", "blocks", "noise", "seed"}
        if unknown:
            raise UsageError(f"build_w('mock'): unknown option {sorted(unknown)[0]!r} (expected n, blocks, noise, seed)")
        n, blocks, noise = cfg.get("n", 256), cfg.get("blocks", 16), cfg.get("noise", 0.05)
        _check_option("n", n, int, 1, 1_000_000)
        _check_option("blocks", blocks, int, 1, n)
        _check_option("noise", noise, float, 0.0, 1.0)
        _check_option("seed", cfg.get("seed", 0), int, 0, 2**32 - 1)
        w, _ = planted_blocks(int(n), int(blocks), float(noise), int(cfg.get("seed", 0)))
        return w
    manager = _manager()
    if source == "trace":
        from icd_core.builtins.workload_mock import MockOptions, build_mock_state

        if "path" not in cfg:
            raise UsageError("build_w('trace'): path= is required (a JSONL access trace)")
        ctx = _context(manager, **{"graph.trace.path": str(cfg["path"]), "graph.trace.holdout": 0.0})
        state = build_mock_state(MockOptions(hidden=int(cfg.get("n", 512))), np.random.default_rng(0))
    else:
        from icd_core.toolkit import load_workload

        if "workload" not in cfg:
            raise UsageError(f"build_w({source!r}): workload= is required (this source reads a model)")
        ctx = _context(manager)
        state = load_workload(cfg["workload"], int(cfg.get("seed", 0)))
    group = state.group(cfg["group"]) if "group" in cfg else state.groups[0]
    return dispatch.build_w(manager, ctx, resolve(manager.registry, "graph", source), state, group).matrix


def _check_option(name: str, value: Any, kind: type, low: float, high: float) -> None:
    """One UsageError line unless ``value`` is a ``kind`` number in [low, high]."""
    numeric = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, numeric) or not low <= value <= high:
        raise UsageError(f"build_w('mock'): {name} must be {'an integer' if kind is int else 'a number'} "
                         f"in [{low}, {high}] (got {value!r})")


def _checked_w(W: Any, block: int, where: str = "icd.fit_permutation") -> sp.csr_matrix:
    """The user's W validated as ``icd solve`` validates a file (same one-line errors), an
    asymmetric one symmetrised and self-loops dropped."""
    from icd_core.layout.graphs import prepare_user_w

    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise UsageError(f"{where}: block must be an integer >= 1 (got {block!r})")
    return prepare_user_w(W, where, int(block), symmetrise=True)[0]


def fit_permutation(W: Any, time_budget_s: float | None = 300, refine_steps: int = 2000, solver: str = "spectral",
                    block: int = 16, seed: int = 0, workers: int | None = None) -> Any:
    """π (``perm[new_position] = old_index``) for W with ``block``-element cache lines, and the
    solver's stats (``C`` and ``Q`` before and after, ``la``, time, ``budget_s``, ``timed_out``).

    ``W`` may also be a list of matrices: they are solved together, in parallel over ``workers``
    processes (default: the cores available), and a list of ``(pi, stats)`` comes back — the
    same whatever the worker count. ``time_budget_s=None`` scales the budget with n.
    """
    from icd_core import Constraints, GraphW
    from icd_core.plugin import dispatch
    from icd_core.plugin.specs import resolve

    many = isinstance(W, (list, tuple))
    problems = [GraphW(matrix=_checked_w(m, block, f"icd.fit_permutation(W[{k}])" if many else "icd.fit_permutation"),
                       meta={"source": "icd.fit_permutation"}, block=block)
                for k, m in enumerate(W if many else [W])]
    manager = _manager()
    ctx = _context(manager, **{"solver.time_budget_s": time_budget_s, "solver.refine_steps": refine_steps,
                               "seed": seed})
    spec = resolve(manager.registry, "solver", solver)
    if many:
        from icd_core.run.batch import solve_many

        return [(np.asarray(f.perm), dict(f.stats)) for f in solve_many(manager, ctx, spec, problems, workers=workers)]
    fit = dispatch.fit_permutation(manager, ctx, spec, problems[0], Constraints())
    return np.asarray(fit.perm), dict(fit.stats)


@attrs.define(eq=False)
class _TensorWorkload:
    """The workload of a lone weight: its forward is the weight itself (so a transform's
    output is what comes back)."""

    name: str = "tensor"
    device: str = "cpu"
    tokens: int = 1
    primary_quality: str = "cosine_pct"

    def forward(self, state: ModelState) -> Any:
        return state.tensors["weight"]

    def quality(self, state: Any, output: Any, reference: Any) -> dict:
        from icd_core.toolkit import output_quality, tensors

        return output_quality(tensors.to_numpy(output), tensors.to_numpy(reference))

    def max_rel_diff(self, output: Any, reference: Any) -> float:
        from icd_core.toolkit import max_rel_diff

        return max_rel_diff(output, reference)


def _transform(tensor: Any, spec: str | dict[str, Any]) -> tuple[Any, TransformMeta]:
    from icd_core.plugin import dispatch
    from icd_core.plugin.specs import resolve
    where = f"apply_{spec['name'] if isinstance(spec, dict) else spec.split(':')[0]}"
    if tensor is None or not hasattr(tensor, "shape"):  # nested lists: a numpy array of them
        try:
            tensor = np.asarray(tensor, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: expected a 2-D weight (out × in) of numbers ({exc})") from None
    shape = tuple(tensor.shape)
    if len(shape) != 2 or 0 in shape:
        raise UsageError(f"{where}: expected a non-empty 2-D weight (out × in), got shape {shape}")
    group = PermutationGroup(name="in", size=shape[1], members=(GroupMember("weight", 1, role="in"),))
    state = ModelState.initial(_TensorWorkload(), {"weight": tensor}, (group,))
    manager = _manager()
    ctx = _context(manager)
    adapter = resolve(manager.registry, "adapter", spec)
    result = dispatch.apply_transform(manager, ctx, adapter, state, state.layout_for({"in": 16}))
    if not np.array_equal(np.asarray(result.state.layout["in"]), np.arange(shape[1])):
        raise IcdError(f"{spec}: the adapter re-ordered the input channels, which a lone weight cannot follow")
    return result.state.tensors["weight"], result.meta


def apply_sparsity(tensor: Any, type: str = "2:4", rate: float = 0.5) -> tuple[Any, TransformMeta]:
    """Prune a weight along its input dimension: ``type`` ``"N:M"`` (e.g. 2:4), ``"unstructured"``
    (the ``rate`` smallest) or ``"block"`` (the ``rate`` weakest 32×32 tiles). The input channels
    keep their order (the channel search needs the model around the weight: use :func:`run`)."""
    if ":" in type:  # no channel search: a lone weight's input order is fixed by its caller
        n, _, m = type.partition(":")
        if not (n.isdigit() and m.isdigit()):
            raise UsageError(f"apply_sparsity: type {type!r}: expected N:M with integers, e.g. '2:4'")
        spec: str | dict[str, Any] = {"name": "sparsity", "n": int(n), "m": int(m), "permute": "none"}
    elif type in ("unstructured",):
        spec = f"sparsity:unstructured:{rate}"
    elif type == "block":
        spec = f"sparsity:block:32:{rate}"
    else:
        raise UsageError(f"apply_sparsity: type {type!r}: expected 'N:M', 'unstructured' or 'block'")
    return _transform(tensor, spec)


def apply_quant(tensor: Any, dtype: str = "int8", method: str = "ptq-minmax",
                group: int | None = None) -> tuple[Any, TransformMeta]:
    """Quantize and dequantize a weight along its input dimension (min-max PTQ): ``dtype``
    ``int8``, ``int4`` or ``fp8``; ``group`` channels per scale (None: per row)."""
    if method != "ptq-minmax":
        raise UsageError(f"apply_quant: method {method!r}: only 'ptq-minmax' is installed")
    return _transform(tensor, {"name": "quant", "dtype": dtype, **({"group": group, "permute": "none"} if group else {})})


def apply_kvcache(cache: Any, block: int = 128, drop: float = 0.1, *, axis: int = -2, sinks: int = 1,
                  recent: int = 1) -> tuple[Any, TransformMeta]:
    """Evict the ``drop`` share of ``block``-token blocks whose keys have the least norm, never
    the first ``sinks`` nor the last ``recent`` blocks. ``cache``: the keys, or a ``(keys,
    values)`` pair, with tokens on ``axis`` (HF layout ``(batch, heads, tokens, head_dim)`` by
    default); comes back in the same shape with fewer tokens."""
    from icd_core import KV_TOKENS
    from icd_core.plugin import dispatch
    from icd_core.plugin.specs import resolve

    pair = isinstance(cache, (tuple, list))
    if pair and len(cache) != 2:
        raise UsageError(f"apply_kvcache: cache: expected keys or a (keys, values) pair, got {len(cache)} tensors")
    tensors = {"keys": cache[0], "values": cache[1]} if pair else {"keys": cache}
    shapes = {name: tuple(getattr(t, "shape", ())) for name, t in tensors.items()}
    if any(len(s) < 2 for s in shapes.values()):
        raise UsageError(f"apply_kvcache: cache: expected tensors with a token axis, got shapes {shapes}")
    axes = {name: axis % len(s) for name, s in shapes.items()}
    tokens = {s[axes[name]] for name, s in shapes.items()}
    if len(tokens) != 1:
        raise UsageError(f"apply_kvcache: keys and values differ in tokens on axis {axis}: {shapes}")
    members = tuple(GroupMember(name, axes[name]) for name in tensors)
    group = PermutationGroup(name="kv", size=tokens.pop(), members=members, kind=KV_TOKENS)
    state = ModelState.initial(_TensorWorkload(), tensors, (group,))
    manager = _manager()
    adapter = resolve(manager.registry, "adapter", {"name": "kv", "block": block, "drop": drop, "sinks": sinks,
                                                    "recent": recent})
    result = dispatch.apply_transform(manager, _context(manager), adapter, state, state.layout_for({"kv": block}))
    out = result.state.tensors
    return ((out["keys"], out["values"]) if pair else out["keys"]), result.meta


@attrs.frozen
class RunArtifacts:
    """A finished run: its directory, whether it succeeded, and the metrics document."""

    path: Path
    ok: bool
    error: str | None
    metrics: Mapping[str, Any]

    @property
    def verdict(self) -> str:
        return str(self.metrics.get("verdict", ""))


def run(config: dict[str, Any] | str | Path | None = None, *, name: str | None = None,
        out_dir: str | Path | None = None, export: str | Path | None = None, **settings: Any) -> RunArtifacts:
    """One ``icd run``: ``config`` a mapping (dotted keys or nested tables) or a config file;
    ``settings`` more dotted keys (``workload="mock"``, ``model="path/to/checkpoint"``,
    ``**{"transform.adapters": [...]}``); ``export``: write the state the run kept there (hf)."""
    from icd_core.cli.launch import launch_committed
    from icd_core.config.files import load_config
    from icd_core.run.artifacts import RunDirectory
    from icd_core.run.selection import select

    given = dict(config) if isinstance(config, Mapping) else {}
    path = config if isinstance(config, (str, Path)) else None
    loaded = load_config(path, cli={**given, **settings, **({"report.out_dir": str(out_dir)} if out_dir else {})})
    manager = _manager()
    selection = select(loaded, manager.registry)
    if export is not None:
        from icd_core.run.export import check_out

        check_out(export, "export")
    directory = RunDirectory(Path(loaded.report.out_dir).expanduser(), name or loaded.name or "run").open()
    outcome = launch_committed(manager, selection, directory)
    if export is not None and outcome.ok:
        from icd_core.cli.export import export_outcome

        export_outcome(manager, selection, outcome, Path(export), "hf", None)
    return RunArtifacts(path=outcome.path, ok=outcome.ok, error=outcome.error, metrics=outcome.record.metrics)


def export(run_dir: str | Path, out: str | Path, *, format: str = "hf", arm: str | None = None) -> dict[str, Any]:
    """``icd export``: re-derive ``run_dir``'s chosen arm from its config (digest-checked) and write
    it to ``out`` as a model directory; returns its ``icd_layout.json``."""
    from icd_core.cli.export import rederive_and_export

    return rederive_and_export(Path(run_dir), Path(out), format, arm)

