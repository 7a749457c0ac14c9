"""Acceptance gates (iterative vs linear) and regression checks (final vs pre-run).

Inputs are branch results as stored in ``metrics.json``: ``{"figures": {...}, "quality":
{...}}``. A missing figure is never a pass: its gate is "not evaluated" with the reason.
"""

from __future__ import annotations

from typing import Any

from .config import GatesConfig, RollbackConfig


def _fig(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    return result.get("figures", {}).get(key)


def _quality(result: dict[str, Any], primary: str) -> dict[str, Any] | None:
    return result.get("quality", {}).get(primary)


def _pair(a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[float, float] | str:
    for entry in (a, b):
        if entry is None:
            return "not measured"
        if entry.get("value") is None:
            return entry.get("reason") or "not measured"
    return float(a["value"]), float(b["value"])  # type: ignore[index]


def _verdict(gate: str, target: float, unit: str, pair: tuple[float, float] | str, compute, passes,
             source: str | None = None) -> dict[str, Any]:
    """One gate; ``source`` says whether it judged measured or modelled figures."""
    if isinstance(pair, str):
        return {"gate": gate, "target": target, "unit": unit, "value": None, "pass": None, "reason": pair,
                "source": None}
    value = compute(*pair)
    return {"gate": gate, "target": target, "unit": unit, "value": value, "pass": bool(passes(value)),
            "reason": None, "source": source}


def _source(*entries: dict[str, Any] | None) -> str | None:
    sources = sorted({e.get("source") for e in entries if e and e.get("source")})
    return " / ".join(sources) or None


def _pct(base: float, new: float) -> float:
    return 100.0 * (new - base) / base if base else float("inf")


def evaluate_gates(linear: dict[str, Any], iterative: dict[str, Any], primary: str,
                   cfg: GatesConfig) -> list[dict[str, Any]]:
    """Verdicts of the four product gates, iterative vs linear."""
    lat = (_fig(linear, "lat_ms"), _fig(iterative, "lat_ms"))
    l2 = (_fig(linear, "l2_hit_pct"), _fig(iterative, "l2_hit_pct"))
    ept = (_fig(linear, "ept_j_per_tok"), _fig(iterative, "ept_j_per_tok"))
    quality = (_quality(linear, primary), _quality(iterative, primary))
    return [
        _verdict("latency", cfg.latency_pct, "%", _pair(*lat), _pct, lambda v: v <= cfg.latency_pct, _source(*lat)),
        _verdict("l2_hit", cfg.l2_pp, "pp", _pair(*l2), lambda a, b: b - a, lambda v: v >= cfg.l2_pp, _source(*l2)),
        _verdict("energy_per_token", cfg.ept_pct, "%", _pair(*ept), _pct, lambda v: v <= cfg.ept_pct, _source(*ept)),
        _verdict("quality_drop", cfg.quality_drop_pp, "pp", _pair(*quality), lambda a, b: a - b,
                 lambda v: v <= cfg.quality_drop_pp, _source(*quality)),
    ]


MIN_REPEATS_FOR_LATENCY = 10
"""Fewer timed repeats than this never trigger a latency rollback (too noisy to judge)."""


def regressions(pre: dict[str, Any], post: dict[str, Any], primary: str, cfg: RollbackConfig) -> list[str]:
    """Why ``post`` is worse than ``pre`` beyond tolerance (empty: no regression)."""
    found = []
    lat = _pair(_fig(pre, "lat_ms"), _fig(post, "lat_ms"))
    if not isinstance(lat, str) and _pct(*lat) > cfg.latency_pct:
        pre_fig, post_fig = _fig(pre, "lat_ms"), _fig(post, "lat_ms")
        enough = min(pre_fig.get("n", 0), post_fig.get("n", 0)) >= MIN_REPEATS_FOR_LATENCY  # type: ignore[union-attr]
        pre_hi, post_lo = pre_fig["ci95"][1], post_fig["ci95"][0]  # type: ignore[index]
        if enough and post_lo > pre_hi * (1 + cfg.latency_pct / 100):
            found.append(f"latency +{_pct(*lat):.1f}% > {cfg.latency_pct}% (95% CIs apart by more than that)")
    l2 = _pair(_fig(pre, "l2_hit_pct"), _fig(post, "l2_hit_pct"))
    if not isinstance(l2, str) and l2[0] - l2[1] > cfg.l2_pp:
        found.append(f"L2 hit -{l2[0] - l2[1]:.2f} pp > {cfg.l2_pp} pp")
    ept = _pair(_fig(pre, "ept_j_per_tok"), _fig(post, "ept_j_per_tok"))
    if not isinstance(ept, str) and _pct(*ept) > cfg.ept_pct:
        found.append(f"energy/token +{_pct(*ept):.1f}% > {cfg.ept_pct}%")
    if cfg.quality_pp is not None:
        q = _pair(_quality(pre, primary), _quality(post, primary))
        if not isinstance(q, str) and q[0] - q[1] > cfg.quality_pp:
            found.append(f"quality {primary} -{q[0] - q[1]:.3f} pp > {cfg.quality_pp} pp")
    return found
