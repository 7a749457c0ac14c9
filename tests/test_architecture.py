"""The shape of the core: at most 12 entries at the top, and plugins import only its public parts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"icd_core", "icd_core.toolkit", "icd_core.testing"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of an ``icd_core`` module in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, m) for line, m in found if m == "icd_core" or m.startswith("icd_core.")]


def test_the_core_has_at_most_twelve_top_level_entries():
    entries = sorted(p.name for p in (ROOT / "icd_core").iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries


def test_plugins_import_only_the_root_the_toolkit_and_testing():
    """Shipped plugins and the third-party test distributions alike."""
    files = [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "tests" / "thirdparty").rglob("*.py")]
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}"
                for path in sorted(files)
                for line, module in imported_modules(path) if module not in PUBLIC]
    assert offences == []


def test_the_boundary_check_sees_nested_and_aliased_imports(tmp_path):
    source = tmp_path / "p.py"
    source.write_text("def f():\n    from icd_core.run import pipeline as p\n    import icd_core.contract.tensors\n")
    assert [m for _, m in imported_modules(source)] == ["icd_core.run", "icd_core.contract.tensors"]


# -- rooms import one way -------------------------------------------------------------------------
ROOMS = ("contract", "icd_core", "config", "layout", "plugin", "run", "report", "toolkit", "builtins", "testing",
         "cli")
"""The core's rooms, lowest first: a module imports only its own room and those before it.
``icd_core`` is the package root (the public facade over ``contract``). Imports under ``if
TYPE_CHECKING:`` are annotations, never executed, and are not counted; function-local imports
are. The plugin manager loads ``builtins`` by module name, as it loads entry points."""


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every executed import of a core module (``from pkg import mod`` is
    an import of ``pkg.mod`` when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            found += [(node.lineno, m) for m in names or [node.module]]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, m) for line, m in found if m in modules]


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def core_graph() -> tuple[list[str], dict[str, Path], list[tuple[str, str, int]]]:
    files = {module_name(p): p for p in sorted((ROOT / "icd_core").rglob("*.py"))}
    names = sorted(files)
    edges = [(m, target, line) for m in names for line, target in runtime_imports(files[m], set(files))
             if target != m]
    return names, files, edges


def test_every_room_is_ranked():
    names, _, _ = core_graph()
    assert sorted({room_of(m) for m in names}) == sorted(ROOMS)


def test_rooms_import_only_themselves_and_the_rooms_below():
    _, files, edges = core_graph()
    upward = [f"{files[a].relative_to(ROOT)}:{line}: {a} ({room_of(a)}) imports {b} ({room_of(b)})"
              for a, b, line in edges if ROOMS.index(room_of(b)) > ROOMS.index(room_of(a))]
    assert upward == []


def test_no_module_imports_itself_in_a_circle():
    """Strongly connected components of the module graph (scipy.sparse.csgraph): every one a
    single module."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    names, _, edges = core_graph()
    index = {m: i for i, m in enumerate(names)}
    rows, cols = zip(*((index[a], index[b]) for a, b, _ in edges), strict=True)
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=True, connection="strong")
    circles = [sorted(m for m, lab in zip(names, labels, strict=True) if lab == label)
               for label in set(labels) if (labels == label).sum() > 1]
    assert circles == []


def test_the_room_check_sees_a_function_local_upward_import_and_skips_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from icd_core.run import context\n"
                      "def f():\n    from icd_core.cli import launch\n")
    assert runtime_imports(source, {"icd_core.run.context", "icd_core.cli.launch"}) == [(5, "icd_core.cli.launch")]


NAME_GUARD = re.compile(r'def (icd_(?!register|report)\w+)\([^)]*\):\n(?:\s+""".*?"""\n)?\s+if \w+\.name (?:!=|not in)\s',
                        re.DOTALL)
"""A phase hook whose body opens by checking whose component it was given (the dispatch calls
only the plugin that registered it, so no body needs to)."""


def test_no_shipped_hook_or_scaffold_template_opens_with_a_name_guard():
    files = [*(p for p in (ROOT / "plugins").rglob("*.py") if "tests" not in p.parts),
             *(ROOT / "icd_core" / "builtins").rglob("*.py"), ROOT / "icd_core" / "plugin" / "scaffold.py"]
    guarded = [f"{path.relative_to(ROOT)}: {m.group(1)}" for path in files
               for m in NAME_GUARD.finditer(path.read_text())]
    assert guarded == []
    assert NAME_GUARD.search('def icd_measure(ctx, measure, state):\n    if measure.name != "x":\n        return None\n')
