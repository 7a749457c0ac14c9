"""The report's figures: static SVG from matplotlib, inlined in report.html (no JavaScript, no
network). Each is a :class:`Plot` holding its SVG, or the reason it could not be drawn.

- latency per state as paired differences with their 95 % CIs (not just medians);
- layout per group: block cost C and lines per access, pre / π₀ (linear) / π₁ (iterative);
- per-layer transform results: 2:4 efficacy (vs the default order and the row bound), or
  quantization error per group, and the tiles or pages each state reads;
- quality metrics pre / linear / iterative.

Colours are told apart in greyscale too (hatching, markers, and every bar is labelled).
"""

from __future__ import annotations

import io
import re
from typing import Any

import attrs

from icd_core.report.rows import layout_means

BRANCHES = ("pre", "linear", "iterative")
STYLE = {"pre": ("#9a9a9a", ""), "identity": ("#c9a227", "xx"), "linear": ("#3b6fb6", "//"),
         "iterative": ("#b3462f", "..")}
MARKERS = {"pre": "o", "identity": "D", "linear": "s", "iterative": "^"}
FONT_PX = 13  # ≥ 12 px on screen: the SVG is shown at its natural width (1 pt = 1 px) or scrolled, never shrunk


@attrs.frozen
class Plot:
    """One figure: an inline SVG, or why there is none."""

    key: str
    title: str
    alt: str
    svg: str | None = None
    missing: str | None = None


RC = {"svg.fonttype": "none", "font.size": FONT_PX, "axes.titlesize": FONT_PX, "axes.labelsize": FONT_PX,
      "xtick.labelsize": FONT_PX, "ytick.labelsize": FONT_PX, "legend.fontsize": FONT_PX,
      "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}
"""Applied only while the report's figures are drawn (a user's own matplotlib settings stay)."""


def standalone_figure(figsize: tuple[float, float]):
    """A standalone matplotlib Figure: no pyplot, no backend switch, nothing global to close."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _svg(fig, key: str, title: str, alt: str) -> str:
    """The figure as an inline SVG element: px-sized viewBox, <title>/<desc>, ids unique to ``key``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": key}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight", dpi=72)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    head_end = text.index(">") + 1
    head = text[:head_end]
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    view = re.search(r'viewBox="([\d.\s-]+)"', head)
    width = float(view.group(1).split()[2]) if view else 600.0
    head = head.replace("<svg", f'<svg role="img" aria-labelledby="{key}-title {key}-desc" '
                               f'style="width: {width:.0f}px; max-width: none; height: auto"', 1)
    from html import escape

    label = f'<title id="{key}-title">{escape(title)}</title><desc id="{key}-desc">{escape(alt)}</desc>'
    body = re.sub(r"<metadata>.*?</metadata>", "", text[head_end:], flags=re.S)
    return head + label + _scoped_ids(body, key)


def _scoped_ids(svg: str, key: str) -> str:
    """Every id in ``svg`` (matplotlib's ``figure_1``, ``axes_1``, clip paths) and every
    reference to it prefixed with ``key``, so several figures share a page without clashes."""
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg
    pattern = re.compile(r'(\sid="|url\(#|href="#)(' + "|".join(map(re.escape, sorted(ids, key=len, reverse=True))) + r')(?=[")])')
    return pattern.sub(lambda m: f"{m.group(1)}{key}-{m.group(2)}", svg)


def _labels(ax, bars, values, fmt: str = "{:.3g}") -> None:
    for bar, value in zip(bars, values):
        if value is not None:
            ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=FONT_PX, xytext=(0, 2), textcoords="offset points")


def _grouped(ax, categories: list[str], series: dict[str, list[float | None]], ylabel: str, fmt: str = "{:.3g}") -> None:
    """Bars per category, one series per state, each hatched and labelled."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        colour, hatch = STYLE.get(name, ("#555555", ""))
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=colour, hatch=hatch, edgecolor="#222222", linewidth=0.5)
        if len(categories) * len(series) <= 12:
            _labels(ax, bars, values, fmt)
    ax.set_xticks(range(len(categories)), categories, rotation=0 if len(categories) <= 6 else 45,
                  ha="center" if len(categories) <= 6 else "right")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, ncols=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.18 if len(categories) <= 6 else -0.35))


def latency_figure(metrics: dict[str, Any], prefix: str = "") -> Plot:
    key, title = prefix + "fig-latency", "Latency: paired changes between states, with 95 % CIs"
    comparisons = metrics.get("comparisons", {})
    pairs = [(label, comparisons.get(name, {}).get("lat_ms")) for name, label in
             (("linear_vs_pre", "linear vs pre"), ("iterative_vs_pre", "iterative vs pre"),
              ("iterative_vs_linear", "iterative vs linear"))]
    pairs = [(label, c) for label, c in pairs if c and c.get("estimate") is not None]
    if not pairs:
        return Plot(key, title, "", missing="no paired latency changes (latency was not measured on two states)")
    target = next((v["target"] for v in metrics.get("gates", {}).get("verdicts", []) if v["gate"] == "latency"), None)
    alt = "; ".join(f"{label}: {c['estimate']:+.2f} % (95 % CI {c['ci95'][0]:+.2f} to {c['ci95'][1]:+.2f})"
                    if c.get("ci95") else f"{label}: {c['estimate']:+.2f} % (no CI)" for label, c in pairs)
    fig = standalone_figure((9.0, 0.75 * len(pairs) + 1.6))
    ax = fig.subplots()
    for i, (label, c) in enumerate(pairs):
        lo, hi = c.get("ci95") or (c["estimate"], c["estimate"])
        ax.errorbar(c["estimate"], i, xerr=[[c["estimate"] - lo], [hi - c["estimate"]]], fmt="o", color="#222222",
                    capsize=5, markersize=6)
        ax.annotate(f"{c['estimate']:+.2f} % [{lo:+.2f}, {hi:+.2f}]", (hi, i), xytext=(8, 0),
                    textcoords="offset points", va="center", fontsize=FONT_PX)
    ax.axvline(0, color="#666666", linewidth=1)
    if target is not None:
        ax.axvline(target, color="#a21818", linestyle="--", linewidth=1)
        ax.annotate(f"gate target {target:+g} %", (target, len(pairs) - 0.5), xytext=(4, 0),
                    textcoords="offset points", color="#a21818", fontsize=FONT_PX)
    ax.set_yticks(range(len(pairs)), [label for label, _ in pairs])
    ax.set_ylim(-0.6, len(pairs) - 0.2)
    ax.set_xlabel("latency change, % (negative is faster)")
    ax.margins(x=0.25)
    return Plot(key, title, alt, svg=_svg(fig, key, title, alt))


def layout_figure(metrics: dict[str, Any], prefix: str = "") -> Plot:
    key, title = prefix + "fig-layout", "Layout per group: block cost C and lines per access, pre / π₀ / π₁"
    results = metrics.get("results", {})
    states = [b for b in BRANCHES if b in results]
    groups = sorted({g for b in states for g in results[b].get("layout", {})})
    if not groups:
        return Plot(key, title, "", missing="no layout metrics (no group had a W)")
    fig = standalone_figure((max(9.0, 1.4 * len(groups) + 4), 4.0))
    axes = fig.subplots(1, 2)
    alt = []
    for ax, metric, label in ((axes[0], "C", "block cost C (lower is better)"),
                              (axes[1], "lines_per_access", "cache lines per access")):
        series = {b: [results[b].get("layout", {}).get(g, {}).get(metric) for g in groups] for b in states}
        for i, (b, values) in enumerate(series.items()):  # markers, not bars: differences are small
            xs = [j + (i - 1) * 0.12 for j, v in enumerate(values) if v is not None]
            ax.plot(xs, [v for v in values if v is not None], marker=MARKERS.get(b, "o"), color=STYLE[b][0],
                    linestyle="-" if b != "pre" else ":", linewidth=1, markersize=7, markeredgecolor="#222222",
                    label=b)
        ax.set_xticks(range(len(groups)), groups, rotation=0 if len(groups) <= 6 else 45,
                      ha="center" if len(groups) <= 6 else "right")
        ax.set_ylabel(label)
        ax.legend(frameon=False, ncols=len(series), loc="upper center", bbox_to_anchor=(0.5, -0.15))
        means = layout_means(metrics, metric)
        alt.append(f"mean {metric}: " + ", ".join(f"{b} {means[b]:.3f}" for b in states if means[b] is not None))
    alt_text = "; ".join(alt) + f" over {len(groups)} group(s)"
    return Plot(key, title, alt_text, svg=_svg(fig, key, title, alt_text))


def _transform_groups(metrics: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]] | None:
    for branch in ("iterative", "linear"):
        for t in metrics.get("results", {}).get(branch, {}).get("transforms", []):
            groups = (t.get("stats") or {}).get("groups")
            if not t.get("noop") and isinstance(groups, dict) and groups:
                return t["spec"], groups
    return None


def transform_figure(metrics: dict[str, Any], prefix: str = "") -> Plot:
    key, title = prefix + "fig-transforms", "Per-layer transform results"
    found = _transform_groups(metrics)
    results = metrics.get("results", {})
    reads = next(((k, label) for k, label in (("kv_pages_per_query", "KV pages read per query"),
                                              ("bsr_tiles", "BSR tiles kept"))
                  if any((results.get(b, {}).get("figures", {}).get(k) or {}).get("value") is not None
                         for b in BRANCHES)), None)
    if found is None and reads is None:
        return Plot(key, title, "", missing="no transform reported per-group results (no adapter, or every one a no-op)")
    panels = (1 if found else 0) + (1 if reads else 0)
    groups = sorted(found[1]) if found else []
    fig = standalone_figure((max(9.0, 1.3 * len(groups) + 5), 4.0))
    axes = fig.subplots(1, panels, squeeze=False)
    axes = list(axes[0])
    alt = []
    if found:
        spec, stats = found
        ax = axes.pop(0)
        if all("efficacy_pct" in stats[g] for g in groups):
            # efficacy: 0 = the default order's kept mass, 100 = the per-row bound (lines at both)
            _grouped(ax, groups, {"linear": [stats[g]["efficacy_pct"] for g in groups]},
                     f"{spec}: efficacy, % of the gap", "{:.1f}")
            ax.axhline(0, color="#666666", linewidth=1)
            ax.axhline(100, color="#666666", linewidth=1, linestyle=":")
            ax.set_ylim(0, 105)
            ax.get_legend().remove()
            ax.set_title("0 = default order's kept mass, 100 = per-row bound", fontsize=FONT_PX)
            mean = sum(stats[g]["efficacy_pct"] for g in groups) / len(groups)
            alt.append(f"{spec} efficacy per group, mean {mean:.1f} % of the gap between the default order and the row bound")
        else:
            metric = next((m for m in ("rel_err_pct", "mse", "error", "rel_err") if all(m in stats[g] for g in groups)), None)
            if metric is None:
                ax.text(0.5, 0.5, f"{spec}: no per-group figure to plot", ha="center", transform=ax.transAxes)
                alt.append(f"{spec}: no per-group figure")
            else:
                _grouped(ax, groups, {"linear": [stats[g][metric] for g in groups]}, f"{spec}: {metric}")
                ax.get_legend().remove()
                alt.append(f"{spec}: {metric} per group")
    if reads:
        metric, label = reads
        ax = axes.pop(0)
        states = [b for b in BRANCHES if b in results]
        values = [(results[b].get("figures", {}).get(metric) or {}).get("value") for b in states]
        bars = ax.bar(states, [v or 0 for v in values], color=[STYLE[b][0] for b in states],
                      hatch=None, edgecolor="#222222", linewidth=0.5)
        for bar, b in zip(bars, states):
            bar.set_hatch(STYLE[b][1])
        _labels(ax, bars, values)
        for bar, value in zip(bars, values):
            if value is None:
                ax.annotate("none (dense)", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom",
                            fontsize=FONT_PX, xytext=(0, 2), textcoords="offset points")
        ax.set_ylabel(label)
        alt.append(f"{label}: " + ", ".join(f"{b} {v:.4g}" for b, v in zip(states, values) if v is not None))
    alt_text = "; ".join(alt)
    return Plot(key, title, alt_text, svg=_svg(fig, key, title, alt_text))


def quality_figure(metrics: dict[str, Any], prefix: str = "") -> Plot:
    key, title = prefix + "fig-quality", "Quality per state: pre / linear / iterative"
    results = metrics.get("results", {})
    states = [b for b in BRANCHES if b in results]
    names = sorted({q for b in states for q, f in results[b].get("quality", {}).items()
                    if f.get("unit") == "%" and f.get("value") is not None and f.get("better", "higher") == "higher"})
    if not names:
        return Plot(key, title, "", missing="no quality metric in % was measured")
    fig = standalone_figure((max(9.0, 1.6 * len(names) + 2), 4.4))
    ax = fig.subplots()
    series = {b: [(results[b]["quality"].get(q) or {}).get("value") for q in names] for b in states}
    _grouped(ax, [n.removesuffix("_pct") for n in names], series, "% (higher is better)", "{:.1f}")
    primary = metrics.get("gates", {}).get("primary_quality")
    alt = "; ".join(f"{q}: " + ", ".join(f"{b} {series[b][i]:.2f}" for b in states if series[b][i] is not None)
                    for i, q in enumerate(names))
    if primary:
        alt = f"primary metric {primary}. " + alt
    return Plot(key, title, alt, svg=_svg(fig, key, title, alt))


FIGURES = (latency_figure, layout_figure, transform_figure, quality_figure)


def run_figures(metrics: dict[str, Any], prefix: str = "") -> list[Plot]:
    """Every figure of a run (element ids start with ``prefix``, for pages showing several runs);
    one that fails, or matplotlib missing, says why instead."""
    plots = []
    for make in FIGURES:
        key = make.__name__.replace("_figure", "")
        try:
            import matplotlib

            with matplotlib.rc_context(RC):
                plots.append(make(metrics, prefix))
        except ImportError as exc:
            plots.append(Plot(f"{prefix}fig-{key}", key, "", missing=f"matplotlib is not installed ({exc.name})"))
        except Exception as exc:  # noqa: BLE001 - a figure must never cost the report
            plots.append(Plot(f"{prefix}fig-{key}", key, "", missing=f"could not be drawn ({type(exc).__name__}: {exc})"))
    return plots
