"""The README stays short and points into docs/, where every section it used to hold lives;
every relative link in the README and docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# The README's sections before the depth moved into docs/ (issue 26): each must be a heading there.
MOVED = ["What a run does", "Verdicts", "Usage", "Bring your model", "Export", "Python API: `import icd`",
         "Shipping: wheels, container, conda, SBOM, licenses, reproducibility", "Sweeps: `icd sweep`",
         "Compiler bridge: `icd bridge RUN --to tvm` (proof of concept)", "Configuration", "Components",
         "Workloads and permutation groups", "Where layout pays: kernels that read it, compared at equal quality",
         "Transforms and what the layout does for them", "Measurement", "Layout metrics and `icd solve`",
         "Writing a plugin", "Benchmarks", "Architecture"]


def anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 10 * 1024
    assert "make run" in text.split("\n```", 2)[1] and "make test" in text.split("\n```", 2)[1]


def test_every_former_readme_section_is_a_heading_in_docs():
    headings = {h.strip() for page in PAGES[1:] for h in re.findall(r"(?m)^#{1,3} (.+)$", page.read_text())}
    assert [title for title in MOVED if title not in headings] == []


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif fragment and file.suffix == ".md":
                anchors = {anchor(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", file.read_text())}
                if fragment not in anchors:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_hook_table_matches_hookspecs():
    """docs/plugins.md's hook table against icd_core.contract.hookspecs: every hook has a row,
    with its arguments in order, and "first answer" exactly for the firstresult hooks."""
    import inspect

    from icd_core.contract import hookspecs

    specs = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("icd_") and callable(fn)}
    rows = {}
    for line in (ROOT / "docs" / "plugins.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`icd_"):
            rows[cells[0].strip("`")] = cells
    assert sorted(rows) == sorted(specs)
    for name, fn in specs.items():
        arguments = ", ".join(inspect.signature(fn).parameters)
        assert rows[name][1].strip("`") == arguments, name
        first = bool(getattr(fn, "icd_spec", {}).get("firstresult"))
        assert (rows[name][4] == "first answer") == first, name
