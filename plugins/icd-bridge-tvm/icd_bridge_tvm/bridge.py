"""The flow: export → attach (``icd.attach_layout``) → check and apply (``icd.apply_layout``,
before legalization) → build for llvm → run and compare with PyTorch.

Insertion points, in pipeline order:

1. ``icd.attach_layout`` — right after import (``from_exported_program``): the run's layout
   becomes IR attributes: module attributes ``icd.version_tag`` and ``icd.layout`` (per group
   π₀, π₁, the final π, block size, constraints, as JSON), and the function attribute
   ``icd.param_groups`` (per parameter: the groups and axes it is permuted along).
2. ``icd.check_layout`` — a pass that reads the attributes and verifies them against
   ``perm.json`` (version tag, every group's π, every member annotated); a mismatch is
   reported in ``bridge.json`` (``check.status`` and the differences), never ignored.
3. ``icd.apply_layout`` — before ``LegalizeOps``: binds the parameters with every member of
   each group permuted along its axis by the final π, then folds constants; the module then
   computes the same function on permuted weights (the permutations are of hidden dimensions).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from icd_core import GroupMember, InputDataError
from icd_core.toolkit import load_workload, max_rel_diff, tensors

from .export import exported

ROUNDTRIP = ("TVMScript (IRModule.script() -> tvm.script.from_source, structurally equal, every icd attribute "
             "compared): tvm.ir.save_json segfaults in apache-tvm 0.27.0.post1 here, even on a hand-written module")

INSERTION_POINTS = [
    {"name": "icd.attach_layout", "after": "relax.frontend.torch.from_exported_program",
     "does": "layout as module/function attributes"},
    {"name": "icd.check_layout", "after": "icd.attach_layout", "does": "attributes verified against perm.json"},
    {"name": "icd.apply_layout", "before": "relax.transform.LegalizeOps",
     "does": "bind parameters permuted by the final π, fold constants"},
]


def final_layout(perm: dict[str, Any], carried: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per group (the ``carried`` ones, or all): π₀, π₁ and the layout in effect (π₀ then π₁;
    the identity when rolled back)."""
    rolled_back = bool(perm.get("rolled_back", {}).get("in_effect", "").startswith("none"))
    out = {}
    for group, entry in perm["groups"].items():
        if carried is not None and group not in carried:
            continue
        size = int(entry["size"])
        pi0 = np.asarray(entry.get("pi0", np.arange(size)), dtype=np.int64)
        pi1 = np.asarray(entry.get("pi1", np.arange(size)), dtype=np.int64)
        final = np.arange(size) if rolled_back else pi0[pi1]
        out[group] = {"size": size, "block": entry.get("block"), "pi0": pi0.tolist(), "pi1": pi1.tolist(),
                      "final": final.tolist(), "rolled_back": rolled_back, "tag": entry.get("tag")}
    return out


def carried_groups(state, parameters: dict[str, str]) -> list[str]:
    """The groups whose every member is an exported parameter (permuting only some members
    of a group would change the function)."""
    exported = set(parameters.values())
    return [g.name for g in state.groups if all(m.tensor in exported for m in g.members)]


def param_groups(state, parameters: dict[str, str], carried: list[str]) -> dict[str, list[list]]:
    """Per Relax parameter: ``[group, axis, offset, tiles, stride]`` of every carried group member it is."""
    by_tensor: dict[str, list[list]] = {}
    for group in state.groups:
        if group.name in carried:
            for m in group.members:
                by_tensor.setdefault(m.tensor, []).append([group.name, m.axis, m.offset, m.tiles, m.stride])
    return {relax: by_tensor[tensor] for relax, tensor in parameters.items() if tensor in by_tensor}


def permuted_params(params: dict[str, np.ndarray], groups: dict[str, list[list]],
                    layout: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every annotated parameter gathered along each of its group axes by the group's final π."""
    out = dict(params)
    for name, members in groups.items():
        value = out[name]
        for group, axis, offset, tiles, stride in members:
            member = GroupMember(tensor=name, axis=axis, offset=offset, tiles=tiles, stride=stride)
            size = layout[group]["size"]
            value = np.take(value, member.index(value.shape[axis], size, np.asarray(layout[group]["final"])), axis=axis)
        out[name] = np.ascontiguousarray(value)
    return out


def attach(mod, tag: str, layout: dict[str, Any], groups: dict[str, list[list]]):
    """Insertion point ``icd.attach_layout``: the layout as IR attributes."""
    mod = mod.with_attr("icd.version_tag", tag)
    mod = mod.with_attr("icd.layout", json.dumps(layout, sort_keys=True))
    main = mod["main"].with_attr("icd.param_groups", json.dumps(groups, sort_keys=True))
    mod.update_func(mod.get_global_var("main"), main)
    return mod


def read_attrs(mod) -> dict[str, Any]:
    """The icd attributes of a module, decoded."""
    return {"version_tag": str(mod.attrs["icd.version_tag"]), "layout": json.loads(str(mod.attrs["icd.layout"])),
            "param_groups": json.loads(str(mod["main"].attrs["icd.param_groups"]))}


def check(mod, perm: dict[str, Any]) -> dict[str, Any]:
    """Insertion point ``icd.check_layout``: the attributes against perm.json."""
    found = read_attrs(mod)
    expected = final_layout(perm, list(found["layout"]))
    if not found["layout"]:
        return {"status": "mismatch", "problems": ["no group is carried by the module"]}
    problems = []
    if found["version_tag"] != perm.get("version_tag"):
        problems.append(f"version tag {found['version_tag'][:12]}… != perm.json {str(perm.get('version_tag'))[:12]}…")
    for group, entry in expected.items():
        got = found["layout"].get(group)
        if got is None:
            problems.append(f"group {group}: no layout attribute")
            continue
        for key in ("pi0", "pi1", "final"):
            if got[key] != entry[key]:
                problems.append(f"group {group}: {key} differs from perm.json")
    annotated = {g for members in found["param_groups"].values() for g, *_ in members}
    problems += [f"group {g}: no parameter annotated" for g in expected if g not in annotated]
    return {"status": "ok" if not problems else "mismatch", "problems": problems}


def _stub():
    """A one-function Relax module to carry attributes on."""
    import tvm
    from tvm.script import relax as R

    @tvm.script.ir_module
    class Stub:
        @R.function
        def main(x: R.Tensor((1,), "float32")):
            return x

    return Stub


def roundtrip_module(mod, text: str):
    """(the module read back from its TVMScript, what was round-tripped). When the printer
    writes what its parser refuses (MiniLM's masks print ``R.const("-inf")``), the icd
    attributes alone are round-tripped on a stub module, and that is said."""
    import tvm

    try:
        loaded = tvm.script.from_source(text)
        tvm.ir.assert_structural_equal(loaded, mod)
        return loaded, "the whole module"
    except Exception as exc:  # a TVMScript printer/parser mismatch, not ours
        found = read_attrs(mod)
        stub = attach(_stub(), found["version_tag"], found["layout"], found["param_groups"])
        back = tvm.script.from_source(stub.script())
        reason = str(exc).strip().splitlines()[0][:160]
        carrier = mod
        for key in ("icd.version_tag", "icd.layout"):
            carrier = carrier.with_attr(key, back.attrs[key])
        main = carrier["main"].with_attr("icd.param_groups", back["main"].attrs["icd.param_groups"])
        carrier.update_func(carrier.get_global_var("main"), main)
        return carrier, f"the icd attributes on a stub module (the whole module's TVMScript does not parse back: {reason})"


def _time(call, repeats: int = 20) -> float:
    call()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples) * 1e3)


def run_bridge(run_dir: Path, out_dir: Path) -> dict[str, Any]:
    import torch
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    config = json.loads((run_dir / "config.json").read_text())
    perm = json.loads((run_dir / "perm.json").read_text())
    if perm.get("rolled_back", {}).get("verified") is False:
        raise InputDataError(f"{run_dir / 'perm.json'}: the run's rollback did not verify, so the layout in effect "
                             f"is unknown; nothing to carry")
    state = load_workload(config["workload"], int(config.get("seed", 0)))
    export = exported(state)
    try:
        program = torch.export.export(export.module, export.example)
        mod = from_exported_program(program, keep_params_as_input=True)
    except Exception as exc:  # torch.export / the Relax frontend name the operator they refuse
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputDataError(f"workload {state.workload.name!r}: cannot export to Relax: {first}") from None
    mod, detached = relax.frontend.detach_params(mod)
    names = [str(p.name) for p in mod["main"].params[len(export.example):]]
    params = {n: v.numpy() for n, v in zip(names, detached["main"])}
    parameters = {n: t for n, t in export.parameters.items() if n in params}
    carried = carried_groups(state, parameters)
    layout = final_layout(perm, carried)
    groups = param_groups(state, parameters, carried)
    mod = attach(mod, perm["version_tag"], layout, groups)

    text = mod.script()  # TVMScript: tvm.ir.save_json segfaults in this TVM build (see ROUNDTRIP)
    loaded, scope = roundtrip_module(mod, text)
    roundtrip = read_attrs(loaded) == read_attrs(mod)
    checked = check(loaded, perm)

    permuted = permuted_params(params, groups, layout)
    bound = relax.transform.BindParams("main", {n: tvm.runtime.tensor(v) for n, v in permuted.items()})(loaded)
    bound = relax.transform.FoldConstant()(bound)
    executable = relax.build(bound, target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    inputs = [tvm.runtime.tensor(tensors.to_numpy(x).astype(np.float32)) for x in export.example]
    result = vm["main"](*inputs)  # the torch frontend returns a tuple of outputs
    output = (result[0] if not hasattr(result, "numpy") else result).numpy()
    diff = float(max_rel_diff(output, export.reference))

    (out_dir / "module.py").write_text(text)
    np.savez(out_dir / "params.npz", **permuted)
    with torch.no_grad():
        torch_ms = _time(lambda: export.module(*export.example))
    tvm_ms = _time(lambda: vm["main"](*inputs))
    return {"insertion_points": INSERTION_POINTS, "roundtrip": roundtrip, "roundtrip_format": ROUNDTRIP,
            "roundtrip_scope": scope,
            "check": checked,
            "equivalence": {"max_rel_diff": diff, "tolerance": 1e-5, "ok": diff <= 1e-5,
                            "what": "max |y_tvm(permuted params) - y_torch| / max |y_torch| on the run's batch"},
            "tvm": tvm.__version__, "workload": state.workload.name, "version_tag": perm["version_tag"],
            "groups_carried": carried, "groups_not_carried": sorted(set(perm["groups"]) - set(carried)),
            "attrs": read_attrs(loaded), "params": sorted(permuted),
            "transforms": "not carried: the weights are the dense model's; the bridge carries the layout",
            "timing": {"informational": True, "torch_ms": torch_ms, "tvm_llvm_ms": tvm_ms,
                       "what": "median of 20 calls on the run's batch, this machine"},
            "files": ["module.py (TVMScript, attributes included)", "params.npz (the permuted parameters)"]}
