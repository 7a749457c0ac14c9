"""Check a CycloneDX SBOM of the product's environment: the format, at least 20 components,
the core and every plugin of this repository, and every pinned runtime requirement.

    python release/check_sbom.py dist/icd-co-<version>.cdx.json

One line per problem and exit 1; else one summary line.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

# packaging: a dependency of matplotlib, so present in the product's venv this runs in
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canonical

ROOT = Path(__file__).resolve().parent.parent
MIN_COMPONENTS = 20


def own_distributions(root: Path = ROOT) -> list[str]:
    """The core and every plugin, by their pyproject names."""
    projects = [root / "pyproject.toml", *sorted(root.glob("plugins/*/pyproject.toml"))]
    return [tomllib.loads(p.read_text())["project"]["name"] for p in projects]


def pinned_requirements(path: Path = ROOT / "requirements.txt") -> list[str]:
    """Names pinned with == in a requirements file."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        if any(spec.operator == "==" for spec in requirement.specifier):
            names.append(requirement.name)
    return names


def problems(bom: dict, expected: list[str]) -> list[str]:
    found = []
    if bom.get("bomFormat") != "CycloneDX":
        found.append(f"bomFormat: expected 'CycloneDX', got {bom.get('bomFormat')!r}")
    components = bom.get("components") or []
    root = (bom.get("metadata") or {}).get("component") or {}
    names = {canonical(c.get("name", "")) for c in components} | {canonical(root.get("name", ""))}
    if len(components) < MIN_COMPONENTS:
        found.append(f"components: expected at least {MIN_COMPONENTS}, got {len(components)}")
    for name in expected:
        if canonical(name) not in names:
            found.append(f"components: {name} is missing")
    unversioned = [c.get("name") for c in components if not c.get("version")]
    if unversioned:
        found.append(f"components without a version: {', '.join(map(str, unversioned[:5]))}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_sbom.py BOM.cdx.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        bom = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"{path}: not a readable JSON SBOM ({exc})", file=sys.stderr)
        return 1
    found = problems(bom, own_distributions() + pinned_requirements())
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    if found:
        return 1
    print(f"sbom: {path} — CycloneDX {bom.get('specVersion')}, {len(bom['components'])} components, "
          f"the core and {len(own_distributions()) - 1} plugins included")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
