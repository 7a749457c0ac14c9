"""Reading Nsight Compute's CSV (``ncu --csv``), in either layout it prints.

``--page raw``: one row per kernel, metrics as columns, a units row under the header.
``--page details`` (default): one row per (kernel, metric) with ``Metric Name`` / ``Metric
Value``. Lines before the header (``==PROF==`` messages, the program's own output) are
skipped; numbers may carry thousands separators. The L2 hit rate of a region is weighted by
each kernel's L2 sectors (reads, plus writes when present), so small kernels do not count as
much as large ones.
"""

from __future__ import annotations

import csv
import io
from typing import Any

HIT = "lts__t_sector_hit_rate.pct"
SECTORS = ("lts__t_sectors_op_read.sum", "lts__t_sectors_op_write.sum")
MISSES = "lts__t_sectors_op_read_lookup_miss.sum"


def _number(text: str) -> float | None:
    text = text.strip().replace(",", "")
    if not text or text.lower() in ("n/a", "nan"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse(text: str) -> list[dict[str, Any]]:
    """Kernels in launch order: ``{"id", "kernel", "metrics": {name: value}}``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise ValueError("no ncu CSV header (a line starting with \"ID\") in the output")
    rows = list(csv.reader(io.StringIO("\n".join(lines[start:]))))
    header = rows[0]
    if "Metric Name" in header:
        col = {name: header.index(name) for name in ("ID", "Kernel Name", "Metric Name", "Metric Value")}
        kernels: dict[str, dict[str, Any]] = {}
        for row in rows[1:]:
            if len(row) < len(header):
                continue
            entry = kernels.setdefault(row[col["ID"]], {"id": row[col["ID"]], "kernel": row[col["Kernel Name"]],
                                                        "metrics": {}})
            value = _number(row[col["Metric Value"]])
            if value is not None:
                entry["metrics"][row[col["Metric Name"]]] = value
        return list(kernels.values())
    metric_cols = [i for i, name in enumerate(header) if "__" in name]
    body = rows[1:]
    if body and not body[0][0].strip():  # the units row
        body = body[1:]
    out = []
    for row in body:
        if len(row) < len(header):
            continue
        metrics = {header[i]: v for i in metric_cols if (v := _number(row[i])) is not None}
        out.append({"id": row[header.index("ID")], "kernel": row[header.index("Kernel Name")], "metrics": metrics})
    return out


def summarize(kernels: list[dict[str, Any]]) -> dict[str, Any]:
    """Sector-weighted L2 hit rate, total sectors and read misses over the kernels."""
    weighted = sectors = misses = 0.0
    used = 0
    for k in kernels:
        m = k["metrics"]
        if HIT not in m:
            continue
        s = sum(m.get(name, 0.0) for name in SECTORS)
        weighted += m[HIT] * s
        sectors += s
        misses += m.get(MISSES, 0.0)
        used += 1
    if used == 0 or sectors == 0:
        raise ValueError("no kernel in the profile reports lts__t_sector_hit_rate.pct with L2 sectors")
    return {"hit_pct": weighted / sectors, "sectors": sectors, "read_misses": misses, "kernels": used,
            "kernels_seen": len(kernels)}
