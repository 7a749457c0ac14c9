"""Summary statistics of repeated timings: median, p95, bootstrap 95 % CI, outliers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def summarize(samples: Sequence[float], seed: int = 0) -> dict[str, object]:
    """Median with a percentile-bootstrap 95 % CI (seeded, so repeatable for equal samples).

    Outliers (outside 1.5·IQR of the quartiles) are counted, not dropped.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, (BOOTSTRAP_RESAMPLES, x.size))], axis=1)
    q1, q3 = np.percentile(x, [25, 75])
    spread = 1.5 * (q3 - q1)
    return {
        "median": float(np.median(x)),
        "p95": float(np.percentile(x, 95)),
        "ci95": [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))],
        "mean": float(x.mean()),
        "min": float(x.min()),
        "n": int(x.size),
        "outliers": int(np.count_nonzero((x < q1 - spread) | (x > q3 + spread))),
    }
