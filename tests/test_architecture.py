"""The shape of the core: at most 12 entries at the top, and plugins import only its public parts."""

from __future__ import annotations

import ast
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
    source.write_text("def f():\n    from icd_core.run import pipeline as p\n    import icd_core.layout.tensors\n")
    assert [m for _, m in imported_modules(source)] == ["icd_core.run", "icd_core.layout.tensors"]
