"""Summary statistics of repeated timings: median, p95, the median's 95 % CI, outliers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_ROUNDS_FOR_CI = 6


def median_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float] | None:
    """Distribution-free 95 % CI of a median: the order statistics of
    ``scipy.stats.quantile_test`` (coverage ≥ 95 % for any continuous distribution, unlike a
    bootstrap of few values). Below 6 values not even the range reaches 95 % (its coverage is
    1 − 2^(1−n): 75 % for 3), so there is no CI: ``None``."""
    from scipy.stats import quantile_test

    x = np.asarray(values, dtype=np.float64)
    if x.size < MIN_ROUNDS_FOR_CI:
        return None
    ci = quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence_level=0.95)
    return float(ci.low), float(ci.high)


def summarize(samples: Sequence[float]) -> dict[str, object]:
    """Median with its distribution-free 95 % CI (:func:`median_ci`; ``None`` below 6 samples).

    Outliers (outside 1.5·IQR of the quartiles) are counted, not dropped.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples")
    q1, q3 = np.percentile(x, [25, 75])
    spread = 1.5 * (q3 - q1)
    ci = median_ci(x)
    return {
        "median": float(np.median(x)),
        "p95": float(np.percentile(x, 95)),
        "ci95": list(ci) if ci is not None else None,
        "mean": float(x.mean()),
        "min": float(x.min()),
        "n": int(x.size),
        "outliers": int(np.count_nonzero((x < q1 - spread) | (x > q3 + spread))),
    }
