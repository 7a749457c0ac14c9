"""Look at a run's report.html as a person does: headless Chromium at desktop and mobile width.

    .venv/bin/python benchmarks/report_browser_check.py RUN_DIR [--png-dir DIR]
    .venv/bin/python benchmarks/report_browser_check.py            # runs the default job first

For each width (1280 px and 390 px) it renders the page to a PNG and, with a probe script
injected into a copy of the page (the artifact itself is not touched), fails on: horizontal
overflow of the page, a figure that is neither drawn (an SVG with a size) nor says why, text
smaller than 12 px as shown (SVG text scaled with its figure), headings that skip a level,
tables without header cells, SVG figures without a <title>. It also checks report.html is under
1 MB, is generated (csv + html, re-rendered in-process) in under 2 s, and loads in the browser
in under 2 s; a table is printed last and the exit status is 1 on any failure. Without
Chromium (Debian's ``chromium``) it says so and exits 2.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTHS = {"desktop": 1280, "mobile": 390}
MAX_BYTES = 1_000_000
MAX_SECONDS = 2.0
MIN_TEXT_PX = 12.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-extensions", "--mute-audio"]

PROBE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const out = {problems: [], figures: 0, svgs: 0};
  const root = document.documentElement;
  out.width = root.clientWidth; out.scrollWidth = root.scrollWidth; out.height = root.scrollHeight;
  if (root.scrollWidth > root.clientWidth + 1)
    out.problems.push(`horizontal overflow: the page is ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  for (const fig of document.querySelectorAll("figure")) {
    out.figures++;
    const svg = fig.querySelector("svg");
    if (svg) {
      out.svgs++;
      const box = svg.getBoundingClientRect();
      if (box.width < 50 || box.height < 50) out.problems.push(`figure ${fig.id}: its SVG is ${box.width}x${box.height} px`);
      if (!svg.querySelector("title")) out.problems.push(`figure ${fig.id}: SVG without <title>`);
    } else if (!/Figure not drawn: ./.test(fig.textContent)) {
      out.problems.push(`figure ${fig.id}: neither drawn nor says why`);
    }
  }
  const small = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || !visible(el) || el.closest("script,style,title,desc")) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest("svg");
    if (svg && svg.viewBox && svg.viewBox.baseVal && svg.viewBox.baseVal.width)
      size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    if (size < MIN_PX - 0.05) {
      const key = `${el.tagName.toLowerCase()} at ${size.toFixed(1)} px`;
      if (!small.has(key)) small.set(key, node.textContent.trim().slice(0, 40));
    }
  }
  for (const [key, text] of small) out.problems.push(`text smaller than ${MIN_PX} px: ${key} ("${text}")`);
  let last = 0;
  for (const h of document.querySelectorAll("h1,h2,h3,h4,h5,h6")) {
    const level = +h.tagName[1];
    if (level > last + 1) out.problems.push(`heading ${h.tagName} "${h.textContent.trim().slice(0, 30)}" skips a level`);
    last = level;
  }
  for (const t of document.querySelectorAll("table"))
    if (!t.querySelector("th")) out.problems.push("a table without header cells");
  const nav = performance.getEntriesByType("navigation")[0];
  out.load_ms = nav ? nav.loadEventStart : null;
  parent.postMessage(JSON.stringify(out), "*");
}, 0));
</script>
""".replace("MIN_PX", str(MIN_TEXT_PX))


def chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


WRAPPER = """<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe src="{src}" style="border:0;width:{width}px;height:{height}px" title="report"></iframe>
<script>window.addEventListener("message", e => {{
  const pre = document.createElement("pre"); pre.id = "icd-browser-check"; pre.textContent = e.data;
  document.body.appendChild(pre); }});</script></body></html>"""


def framed(page: Path, width: int, height: int, inject: bool) -> tuple[Path, list[Path]]:
    """A wrapper page showing ``page`` in a ``width``-px frame (headless Chromium's window is at
    least 500 px wide, so the mobile width is a frame, as in a device emulator)."""
    inner = page.with_name(f".probe-{width}.html")
    text = page.read_text(encoding="utf-8")
    inner.write_text(text.replace("</body>", PROBE + "</body>") if inject else text, encoding="utf-8")
    outer = page.with_name(f".probe-{width}-frame.html")
    outer.write_text(WRAPPER.format(src=inner.name, width=width, height=height), encoding="utf-8")
    return outer, [inner, outer]


def probe(browser: str, page: Path, width: int, profile: Path) -> dict:
    """Load ``page`` at ``width`` with the probe injected; its findings."""
    outer, made = framed(page, width, 900, inject=True)
    try:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={max(width, 500)},900",
                               "--virtual-time-budget=10000", "--dump-dom", outer.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    marker = '<pre id="icd-browser-check">'
    if marker not in done.stdout:
        return {"problems": [f"the page did not finish loading in Chromium (exit {done.returncode})"]}
    found = done.stdout.split(marker, 1)[1].split("</pre>", 1)[0]
    return json.loads(html.unescape(found))


def screenshot(browser: str, page: Path, width: int, height: int, png: Path, profile: Path) -> bool:
    height = min(height, 16000)
    outer, made = framed(page, width, height, inject=False)
    try:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                               f"--screenshot={png}", outer.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    return done.returncode == 0 and png.is_file() and png.stat().st_size > 0


def generation_seconds(run: Path) -> float:
    """Re-render report.csv and report.html in-process (what the reporters do), best of 3."""
    from icd_core.builtins.reporters import render_csv, render_html
    from icd_core.report.finished import load_run

    record = load_run(run)
    render_html(record.metrics, record.events)  # imports and template compile are paid once per process
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        render_csv(record.metrics)
        render_html(record.metrics, record.events)
        best = min(best, time.perf_counter() - t0)
    return best


def check(run: Path, png_dir: Path) -> tuple[bool, list[tuple[str, str, str]]]:
    page = run / "report.html"
    browser = chromium()
    rows: list[tuple[str, str, str]] = []
    size = page.stat().st_size
    rows.append(("report.html size", f"{size / 1e3:.0f} kB", "ok" if size < MAX_BYTES else f"FAIL (>= {MAX_BYTES / 1e6:g} MB)"))
    seconds = generation_seconds(run)
    rows.append(("report generation (csv + html)", f"{seconds:.2f} s",
                 "ok" if seconds < MAX_SECONDS else f"FAIL (>= {MAX_SECONDS:g} s)"))
    png_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for label, width in WIDTHS.items():
            found = probe(browser, page, width, Path(tmp) / label)
            problems = found.get("problems", [])
            load = found.get("load_ms")
            if load is not None and load > MAX_SECONDS * 1000:
                problems.append(f"loads in {load / 1000:.2f} s (>= {MAX_SECONDS:g} s)")
            png = png_dir / f"report-{label}-{width}px.png"
            if not screenshot(browser, page, width, int(found.get("height", 3000)), png, Path(tmp) / f"{label}-shot"):
                problems.append(f"no screenshot ({png})")
            summary = (f"{found.get('svgs', 0)} SVG figures of {found.get('figures', 0)}, page "
                       f"{found.get('scrollWidth')}/{found.get('width')} px wide, load "
                       f"{(load or 0) / 1000:.2f} s, {png.name}")
            rows.append((f"{label} {width} px", summary, "ok" if not problems else "FAIL"))
            rows += [("", problem, "FAIL") for problem in problems]
    return all(r[2] == "ok" for r in rows if r[2]), rows


def default_run(out: Path) -> Path:
    icd = Path(sys.executable).parent / "icd"
    done = subprocess.run([str(icd), "run", "--solver", "spectral", "--adapter", "sparsity:2:4", "--out-dir", str(out),
                           "--name", "default"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"report_browser_check: the default run failed: {done.stderr.strip().splitlines()[-1:]}")
    return out / "default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a finished run directory (default: run the default job)")
    parser.add_argument("--png-dir", type=Path, help="where the screenshots go (default: the run directory)")
    args = parser.parse_args(argv)
    if chromium() is None:
        print("report_browser_check: no Chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or default_run(Path(tmp))
        if not (run / "report.html").is_file():
            print(f"report_browser_check: {run}: no report.html", file=sys.stderr)
            return 1
        ok, rows = check(run, args.png_dir or run)
        width = max(len(r[0]) for r in rows)
        for name, value, verdict in rows:
            print(f"{name.ljust(width)}  {verdict:<6}  {value}")
        print(f"report_browser_check: {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
