"""A finished run's chosen state as a model directory (``icd run --export``, ``icd export``).

The workload's plugin writes the weights (hook ``icd_export``); the core adds
``icd_layout.json`` — π per group, the transforms, the run it came from, icd's version — and
renames the temporary directory into place, so an export is whole or absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from icd_core.contract.errors import ArtifactWriteError, UsageError
from icd_core.contract.jsonify import dumps
from icd_core.contract.staging import held_directory, publish
from icd_core.contract.state import ModelState
from icd_core.plugin import dispatch
from icd_core.plugin.manager import PluginManager
from icd_core.plugin.specs import ComponentSpec
from icd_core.run.privacy import redact

LAYOUT_FILE = "icd_layout.json"
LAYOUT_VERSION = 1


ARMS = ("pre", "identity", "linear", "iterative")  # every arm a run may hold


EXPORT_ABILITY = "export:"  # a workload's ability "export:<format>": its plugin's icd_export writes <format>


def export_formats(abilities: tuple[str, ...]) -> list[str]:
    """The formats a workload declares it exports (abilities ``export:<format>``)."""
    return [a[len(EXPORT_ABILITY):] for a in abilities if a.startswith(EXPORT_ABILITY)]


NEEDS_ABILITY = "export-needs:"  # a workload's "export-needs:<format>:<kind>": <format> is written from a <kind> transform
TRANSFORM_ABILITY = "transform:"  # an adapter's "transform:<kind>": the detail kind its transforms record


def check_format(workload: str, abilities: tuple[str, ...], fmt: str, label: str = "--export-format",
                 adapters: Mapping[str, tuple[str, ...]] | None = None,
                 installed: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Before any work: the workload exports at all, and in ``fmt``; and when the workload writes
    ``fmt`` from a kind of transform (``export-needs:<fmt>:<kind>``), one of the selected
    ``adapters`` (spec → abilities) declares that kind (``transform:<kind>``). ``installed``
    (name → abilities): every adapter, to name those that would do."""
    formats = export_formats(abilities)
    if not formats:
        raise UsageError(f"--export: workload {workload!r} cannot be exported (its plugin declares no export format)")
    if fmt not in formats:
        raise UsageError(f"{label} {fmt}: workload {workload!r} exports {', '.join(formats)}")
    if adapters is None:
        return
    produced = {a[len(TRANSFORM_ABILITY):] for found in adapters.values() for a in found
                if a.startswith(TRANSFORM_ABILITY)}
    for need in abilities:
        if not need.startswith(f"{NEEDS_ABILITY}{fmt}:"):
            continue
        kind = need.rsplit(":", 1)[1]
        if kind not in produced:
            able = sorted(n for n, found in (installed or {}).items() if f"{TRANSFORM_ABILITY}{kind}" in found)
            chosen = ", ".join(adapters) or "none"
            raise UsageError(f"{label} {fmt}: workload {workload!r} writes it from a {kind} transform, and the "
                             f"selected adapters ({chosen}) do none"
                             + (f" (add one: {', '.join(able)})" if able else ""))


def check_selection(registry: Any, selection: Any, fmt: str, label: str = "--export-format") -> None:
    """:func:`check_format` for a selected run: its workload's abilities, its adapters' and every
    installed adapter's (to name those that would do)."""
    check_format(selection.workload.name, registry.get("workload", selection.workload.name).abilities, fmt, label,
                 adapters={a.text: registry.get("adapter", a.name).abilities for a in selection.adapters},
                 installed={c.name: c.abilities for c in registry if c.kind == "adapter"})


def check_out(out: Path | str, label: str = "--out") -> Path:
    """Before any work: ``out`` names a new path (or an empty directory: nothing of the user's is
    replaced), is no symbolic link, and its nearest existing parent is a directory this process
    may write into (the export is staged beside it and renamed into place)."""
    if not str(out).strip():
        raise UsageError(f"{label}: an empty path (give the directory to write)")
    out = Path(out).expanduser()
    if out.is_symlink():
        raise UsageError(f"{label} {out}: is a symbolic link (give a plain new path)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{label} {out}: exists and is not an empty directory (choose a new path)")
    parent = out.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{label} {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{label} {out}: {parent} is not writable")
    return out


def choose_arm(states: Mapping[str, ModelState], kept: str | None, arm: str | None, error: str | None) -> str:
    """The arm to export: ``arm`` when given, else the one the run kept (``pre`` if it rolled back)."""
    if kept is None:
        raise UsageError(f"the run failed ({error}): nothing to export")
    if arm is None:
        return kept
    if arm not in states:
        raise UsageError(f"--arm {arm}: not an arm of this run (arms: {', '.join(states)})")
    return arm


def transforms_of(state: ModelState) -> list[dict[str, Any]]:
    return [{"adapter": m.adapter, "spec": m.spec, "noop": m.noop, "reason": m.reason,
             "details": {kind: dict(detail) for kind, detail in m.details.items()},
             "tensors": list(m.stats.get("tensors", [])),
             # how many targeted weights it transformed, how many in icd's order (a group on their inputs)
             **({"weights": dict(m.stats["weights"]), "natural_order": list(m.stats.get("natural_order", []))}
                if "weights" in m.stats else {})} for m in state.applied]


def layout_document(state: ModelState, fmt: str, source: Mapping[str, Any], written: Mapping[str, Any]) -> dict:
    from icd_core import __version__

    return {"icd_layout": LAYOUT_VERSION, "icd_version": __version__, "format": fmt, "source": dict(source),
            "groups": {g.name: {"kind": g.kind, "size": g.size,
                                "pi": np.asarray(state.layout[g.name]).tolist(),
                                "identity": bool(np.array_equal(state.layout[g.name], np.arange(g.size))),
                                "members": [{"tensor": m.tensor, "axis": m.axis, "role": m.role, "offset": m.offset,
                                             "tiles": m.tiles, "stride": m.stride} for m in g.members]}
                       for g in state.groups},
            "transforms": transforms_of(state), "written": dict(written),
            "pi_meaning": "pi[new position] = original index along every member axis of the group"}


def sizes(directory: Path, state: ModelState) -> dict[str, Any]:
    """What the plugin wrote, in bytes on disk, beside the state's tensors in float32."""
    on_disk = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file() and not f.is_symlink())
    float32 = sum(4 * (int(t.numel()) if hasattr(t, "numel") else int(np.size(t))) for t in state.tensors.values())
    return {"bytes_on_disk": on_disk, "float32_bytes": float32,
            "size_vs_float32": round(on_disk / float32, 4) if float32 else None}


def check_free_space(parent: Path, state: ModelState) -> None:
    """The state's tensors fit in the free space of ``parent`` (an estimate of the export's
    size: stored as they are held; a compressed export writes less), checked before writing."""
    import shutil

    need = sum(int(getattr(t, "nbytes", 0)) for t in state.tensors.values())
    free = shutil.disk_usage(parent).free
    if need > free:
        raise ArtifactWriteError(f"{parent}: {free:,} bytes free, the export needs about {need:,} (the state's "
                                 f"tensors); nothing exported")


def export_state(manager: PluginManager, workload: ComponentSpec, state: ModelState, out: Path, fmt: str,
                 source: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``state`` to ``out`` (absent or empty) through the workload's plugin; returns the
    ``icd_layout.json`` document."""
    out = check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(out.parent, state)
        with held_directory(out.parent, f".{out.name}.partial-") as staging:  # a killed export's is swept next time
            written = dispatch.export(manager, workload, state, staging, fmt)
            document = layout_document(state, fmt, source, {**written, **sizes(staging, state)})
            # the file people publish with a model: the home directory as ~, secrets redacted
            (staging / LAYOUT_FILE).write_text(redact(dumps(document), json_text=True) + "\n")
            if out.exists():
                out.rmdir()  # empty, checked above
            publish(staging)  # readable like save_pretrained's output, not 0700 like a staging directory
            staging.rename(out)
    except Exception as exc:
        if not isinstance(exc, OSError) and "No space left" not in str(exc):  # safetensors' own error type
            raise
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ArtifactWriteError(f"{out}: cannot write the export ({reason}); nothing exported") from None
    return document


def read_layout(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / LAYOUT_FILE).read_text())
