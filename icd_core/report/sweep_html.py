"""``sweep.html``: a self-contained page of a sweep — per trial and arm, latency, quality and
cost (bytes, pages or tiles the layout decides) as static SVG plots (matplotlib), the
equal-quality frontier, and iterative vs linear latency with its paired 95 % CI. A plot that
has no data says why. Needs matplotlib (a core dependency)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from icd_core.report.figures import standalone_figure

ARMS = ("pre", "identity", "linear", "iterative")
COST_KEYS = ("kv_pages_per_query", "bsr_tiles", "cache_bytes_per_access", "tiles32")


def _value(figure: dict[str, Any] | None) -> float | None:
    return None if not figure else figure.get("value")


def trial_points(sweep_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per finished trial: its label and, per arm, latency, primary quality and cost."""
    points = []
    for trial in manifest["trials"]:
        path = sweep_dir / trial["run_dir"] / "metrics.json"
        if trial["state"] != "done" or not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        results = metrics.get("results", {})
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in trial["params"].items()) or trial["name"]
        cost_key = next((k for k in COST_KEYS if any(_value(r.get("figures", {}).get(k)) is not None
                                                     for r in results.values())), None)
        arms = {}
        for arm in ARMS:
            r = results.get(arm)
            if not r:
                continue
            primary = r.get("primary_quality")
            arms[arm] = {"lat_ms": _value(r.get("figures", {}).get("lat_ms")),
                         "quality": _value(r.get("quality", {}).get(primary)),
                         "cost": _value(r.get("figures", {}).get(cost_key)) if cost_key else None}
        change = metrics.get("comparisons", {}).get("iterative_vs_linear", {}).get("lat_ms") or {}
        points.append({"label": label, "arms": arms, "cost_key": cost_key,
                       "quality_key": next((r.get("primary_quality") for r in results.values()), None),
                       "change": change if change.get("estimate") is not None else None})
    return points


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _per_arm(points: list[dict[str, Any]], key: str, ylabel: str, title: str) -> str | None:
    series = {arm: [(i, p["arms"][arm][key]) for i, p in enumerate(points)
                    if arm in p["arms"] and p["arms"][arm][key] is not None] for arm in ARMS}
    if not any(series.values()):
        return None
    fig = standalone_figure((7, 3.2))
    ax = fig.subplots()
    for arm, xy in series.items():
        if xy:
            ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", linestyle="", label="dense" if arm == "pre" else arm)
    ax.set_xticks(range(len(points)), [p["label"] for p in points], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _svg(fig)


def _changes(points: list[dict[str, Any]]) -> str | None:
    rows = [(i, p["change"]) for i, p in enumerate(points) if p["change"] and p["change"].get("ci95")]
    if not rows:
        return None
    fig = standalone_figure((7, 3.2))
    ax = fig.subplots()
    est = [c["estimate"] for _, c in rows]
    lo = [c["estimate"] - c["ci95"][0] for _, c in rows]
    hi = [c["ci95"][1] - c["estimate"] for _, c in rows]
    ax.errorbar([i for i, _ in rows], est, yerr=[lo, hi], fmt="o", capsize=3)
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_xticks(range(len(points)), [p["label"] for p in points], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("latency change, %")
    ax.set_title("iterative vs linear: paired latency change with its 95 % CI", fontsize=10)
    return _svg(fig)


def _frontier(points: list[dict[str, Any]]) -> str | None:
    pairs = {arm: [(p["arms"][arm]["quality"], p["arms"][arm]["cost"]) for p in points if arm in p["arms"]
                   and p["arms"][arm]["quality"] is not None and p["arms"][arm]["cost"] is not None] for arm in ARMS}
    if not any(pairs.values()):
        return None
    fig = standalone_figure((5.5, 3.6))
    ax = fig.subplots()
    for arm, xy in pairs.items():
        if xy:
            ax.scatter([q for q, _ in xy], [c for _, c in xy], label="dense" if arm == "pre" else arm, s=18)
    every = [(q, c) for xy in pairs.values() for q, c in xy]
    front, best = [], float("inf")
    for q, c in sorted(every, key=lambda t: (-t[0], t[1])):  # highest quality first; keep what lowers cost
        if c < best:
            front.append((q, c))
            best = c
    if len(front) > 1:
        ax.plot([q for q, _ in front], [c for _, c in front], color="#444", linewidth=0.8, label="frontier")
    ax.set_xlabel(f"quality ({points[0]['quality_key']}, higher is better)")
    ax.set_ylabel(points[0]["cost_key"] or "cost")
    ax.set_title("cost vs quality per arm: the frontier (lower cost at equal quality)", fontsize=10)
    ax.legend(fontsize=7)
    return _svg(fig)


def render_sweep_html(sweep_dir: Path, manifest: dict[str, Any]) -> str:
    """The page, or raises ImportError when matplotlib is missing."""
    import matplotlib  # noqa: F401  (ImportError here when it is missing)

    points = trial_points(sweep_dir, manifest)
    cost_key = next((p["cost_key"] for p in points if p["cost_key"]), None)
    plots = [
        ("Latency per arm", _per_arm(points, "lat_ms", "lat_ms (median)", "latency per trial and arm"),
         "no trial measured latency"),
        ("Quality per arm", _per_arm(points, "quality", points[0]["quality_key"] if points else "quality",
                                     "primary quality per trial and arm"), "no trial reported a quality"),
        ("Cost per arm", _per_arm(points, "cost", cost_key or "cost", f"{cost_key} per trial and arm"),
         "no trial reported pages, tiles or modelled bytes"),
        ("Iterative vs linear", _changes(points), "no trial compared iterative with linear (mode compare)"),
        ("Equal-quality frontier", _frontier(points), "no arm has both a quality and a cost"),
    ]
    counts = {s: sum(1 for t in manifest["trials"] if t["state"] == s) for s in ("done", "failed", "pending")}
    body = [f"<h1>icd sweep <code>{html.escape(manifest['name'])}</code></h1>",
            f"<p>{len(manifest['trials'])} trials: {counts['done']} done, {counts['failed']} failed, "
            f"{counts['pending']} pending · spec <code>{html.escape(str(manifest['spec']))}</code></p>"]
    for title, svg, why in plots:
        body.append(f"<h2>{title}</h2>")
        body.append(svg if svg else f"<p class='na'>Not drawn: {why}.</p>")
    body.append("<h2>Trials</h2><table><tr><th>trial</th><th>state</th><th>error</th></tr>")
    for t in manifest["trials"]:
        body.append(f"<tr><td>{html.escape(t['name'])}</td><td>{t['state']}</td>"
                    f"<td>{html.escape(t.get('error') or '')}</td></tr>")
    body.append("</table>")
    style = ("body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
             ".na{color:#777}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>icd sweep "
            f"{html.escape(manifest['name'])}</title><style>{style}</style></head><body>" + "\n".join(body)
            + "</body></html>\n")
