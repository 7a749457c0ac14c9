"""What was measured on one state (a branch: pre, linear, iterative), kept typed until written.

Every measure's figure is kept under its source (``figures[key]`` holds them best first:
measured > simulated > modelled > computed, values before nulls), so two measures giving the
same figure never hide each other and comparisons can find a source both states share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from icd_core.contract.records import Figure, TransformMeta
from icd_core.run.paired import Change, compare, pick_common, priority

FIGURE_KEYS = ("lat_ms", "toks_per_s", "l2_hit_pct", "ept_j_per_tok")
"""Figures every run reports (``null`` with the reason when no measure gave them)."""
RELATIVE = ("lat_ms", "toks_per_s", "ept_j_per_tok", "cache_misses_per_access", "cache_bytes_per_access",
            "cache_lines_read_per_access", "attention_ms", "kv_pages_per_query", "kv_bytes_per_token", "bsr_tiles",
            "tiles32", "tiles64")
"""Figures compared as a relative change (%); all others as a difference in their unit."""
BRANCH_PAIRS = (("linear", "iterative"), ("identity", "linear"), ("pre", "identity"), ("pre", "linear"),
                ("pre", "iterative"))

CONTROL = "random"
"""Prefix of the control arms: the transform after a random function-preserving order instead of π₀."""


def is_control(branch: str) -> bool:
    return branch.startswith(CONTROL)


def ranked(figures: list[Figure]) -> tuple[Figure, ...]:
    """Values before nulls, then by source priority (stable)."""
    return tuple(sorted(figures, key=lambda f: (f.value is None, priority(f))))


@attrs.frozen(eq=False)
class BranchResult:
    """Figures (every source), quality, layout metrics and identity of one measured state."""

    figures: Mapping[str, tuple[Figure, ...]]
    quality: Mapping[str, Figure]
    primary_quality: str
    measures: Mapping[str, str]
    layout: Mapping[str, Mapping[str, Any]]
    state_digest: str
    tokens: int
    transforms: tuple[TransformMeta, ...] = ()

    def best(self, key: str) -> Figure | None:
        found = self.figures.get(key)
        return found[0] if found else None

    def with_figures(self, updates: Mapping[str, Figure]) -> BranchResult:
        """Add figures; one of a source already present replaces it."""
        merged = dict(self.figures)
        for key, figure in updates.items():
            kept = [f for f in merged.get(key, ()) if f.source != figure.source and f.value is not None]
            merged[key] = ranked([figure, *kept])
        return attrs.evolve(self, figures=merged)

    def candidates(self, metric: str) -> tuple[Figure, ...]:
        """The figures a comparison of ``metric`` may use (a quality key or a figure key)."""
        if metric in self.quality:
            return (self.quality[metric],)
        return self.figures.get(metric, ())

    def to_json(self) -> dict[str, Any]:
        figures = {k: v[0].to_json() for k, v in self.figures.items() if v}
        others = {k: [f.to_json() for f in v[1:]] for k, v in self.figures.items() if len(v) > 1}
        return {"figures": figures, "alternatives": others,
                "quality": {k: f.to_json() for k, f in self.quality.items()},
                "primary_quality": self.primary_quality, "measures": dict(self.measures),
                "layout": {k: dict(v) for k, v in self.layout.items()}, "state_digest": self.state_digest,
                "tokens": self.tokens, "transforms": [attrs.asdict(m) for m in self.transforms]}


def kind_of(metric: str) -> str:
    return "relative" if metric in RELATIVE else "difference"


def branch_change(a: BranchResult, b: BranchResult, metric: str, seed: int = 0) -> Change | str:
    """``metric`` from ``a`` to ``b`` on the best source both have, or why not."""
    pair = pick_common(a.candidates(metric), b.candidates(metric))
    if isinstance(pair, str):
        return pair
    return compare(metric, pair[0], pair[1], kind_of(metric), seed)  # type: ignore[arg-type]


def all_changes(results: Mapping[str, BranchResult], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every figure and quality metric for each pair of branches, as JSON-ready dicts; each
    control arm's quality against the linear arm's (``linear_vs_random1`` …)."""
    out: dict[str, dict[str, Any]] = {}
    controls = tuple((c, "linear") for c in results if is_control(c))
    for a, b in BRANCH_PAIRS + controls:
        if a not in results or b not in results:
            continue
        if is_control(a):
            metrics = sorted({*results[a].quality} & {*results[b].quality})
        else:
            metrics = sorted({*results[a].figures, *results[b].figures} | {*results[a].quality, *results[b].quality})
        row = {}
        for metric in metrics:
            change = branch_change(results[a], results[b], metric, seed)
            row[metric] = change.to_json() if isinstance(change, Change) else {"metric": metric, "reason": change}
        out[f"{b}_vs_{a}"] = row
    return out
