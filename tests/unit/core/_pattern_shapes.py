"""Synthetic bar series with (and without) chart patterns, for the chart-pattern tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bars = tuple[F64, F64, F64, F64, F64]


def from_path(path: F64, seed: int, noise: float = 0.25, spike_at: int | None = None) -> Bars:
    """OHLCV bars following ``path`` (closes = path + N(0, noise)), opens at the prior close,
    shadows |N(0, noise)|, volume ~1e6 with a 3x spike at ``spike_at``."""
    rng = np.random.default_rng(seed)
    n = path.size
    close = path + rng.normal(0.0, noise, n)
    open_ = np.concatenate([[path[0]], close[:-1]])
    high = np.maximum(open_, close) + np.abs(rng.normal(0.0, noise, n))
    low = np.minimum(open_, close) - np.abs(rng.normal(0.0, noise, n))
    volume = rng.uniform(0.8e6, 1.2e6, n)
    if spike_at is not None:
        volume[spike_at] *= 3.0
    return open_, high, low, close, volume


def anchors(points: list[tuple[int, float]]) -> F64:
    """Piecewise-linear path through (bar, price) anchors, bar 0 .. last anchor."""
    xs, ys = zip(*points, strict=True)
    return np.interp(np.arange(xs[-1] + 1), xs, ys)


DOUBLE_TOP = [(0, 95.0), (60, 120.0), (85, 108.0), (110, 120.0), (150, 98.0)]
DOUBLE_BOTTOM = [(0, 125.0), (60, 100.0), (85, 112.0), (110, 100.0), (150, 122.0)]
HEAD_SHOULDERS = [(0, 92.0), (40, 115.0), (55, 106.0), (75, 124.0), (95, 106.0), (115, 115.0), (150, 96.0)]
INVERSE_HS = [(0, 128.0), (40, 105.0), (55, 114.0), (75, 96.0), (95, 114.0), (115, 105.0), (150, 124.0)]
ASCENDING = [
    (0, 90.0),
    (30, 110.0),
    (45, 100.0),
    (60, 110.0),
    (75, 104.0),
    (90, 110.0),
    (105, 108.0),
    (115, 110.0),
    (140, 122.0),
]
DESCENDING = [
    (0, 120.0),
    (30, 100.0),
    (45, 110.0),
    (60, 100.0),
    (75, 106.0),
    (90, 100.0),
    (105, 102.0),
    (115, 100.0),
    (140, 88.0),
]
SYMMETRICAL = [
    (0, 92.0),
    (30, 118.0),
    (45, 100.0),
    (60, 115.0),
    (75, 102.4),
    (90, 112.0),
    (105, 104.8),
    (115, 109.5),
    (140, 121.0),
]


def trend_path(n: int, slope_per_bar: float, start: float = 100.0) -> F64:
    return start * np.exp(slope_per_bar * np.arange(n))


def random_walk(n: int, seed: int, sigma: float = 0.01) -> F64:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
