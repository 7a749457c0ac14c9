"""``icd --version``: the core version and installed plugins, read from metadata only."""

from __future__ import annotations

from icd_core.plugin.manager import (
    CORE_DISTRIBUTION,
    distribution_of,
    installed_entry_points,
    metadata_version,
)


def version_text() -> str:
    lines = [f"icd {metadata_version(CORE_DISTRIBUTION)}"]
    eps = installed_entry_points()
    if not eps:
        lines.append("plugins: none installed")
    for ep in eps:
        dist, version = distribution_of(ep)
        lines.append(f"  {ep.name:<12} {dist} {version}")
    return "\n".join(lines)
