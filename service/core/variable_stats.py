"""Summary statistics and a histogram of one variable's value, for the dashboard.

Computed in float64 over the finite elements only: a variable that holds NaN or infinities
still gets figures for the rest, and says how many elements were left out, so the page can
flag a diverged weight instead of failing to draw it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve.server.errors import InvalidArgument

__all__ = ["DEFAULT_BINS", "MAX_BINS", "check_bins", "variable_stats"]

DEFAULT_BINS = 30
MAX_BINS = 200


def check_bins(bins: int) -> int:
    if not 1 <= bins <= MAX_BINS:
        raise InvalidArgument(f"bins must be between 1 and {MAX_BINS}, got {bins}", code="invalid_argument")
    return bins


def variable_stats(value: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """min, max, mean, std (population, as ``np.std`` and ``tf.math.reduce_std``), counts of
    NaN and infinite elements, and ``histogram``: ``bins`` equal-width bins over [min, max]
    (``edges`` has one more entry than ``counts``). Figures are None when no element is finite."""
    flat = np.asarray(value).ravel().astype(np.float64, copy=False)
    finite_mask = np.isfinite(flat)
    finite = flat[finite_mask]
    out: dict[str, Any] = {"size": int(flat.size), "nan": int(np.isnan(flat).sum()),
                           "inf": int(flat.size - finite.size - np.isnan(flat).sum())}
    if finite.size == 0:
        return {**out, "min": None, "max": None, "mean": None, "std": None, "histogram": {"edges": [], "counts": []}}
    low, high = float(finite.min()), float(finite.max())
    # A constant variable (a zero bias) gets one bin around its value, as TensorBoard draws it.
    span = (low - 0.5, high + 0.5) if low == high else (low, high)
    counts, edges = np.histogram(finite, bins=1 if low == high else bins, range=span)
    return {**out, "min": low, "max": high, "mean": float(finite.mean()), "std": float(finite.std()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}
