"""Outcome statistics shared by live signal stats and the backtest: hit-rate intervals and calibration.

Probabilities are in 0..1; outcomes are 0/1 (1 = the target was reached first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (NaN, NaN when n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def brier_score(p: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean squared error of probabilities ``p`` against 0/1 outcomes ``y`` (NaN when empty)."""
    pa, ya = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.mean((pa - ya) ** 2)) if pa.size else math.nan


@dataclass(frozen=True)
class CalibrationBin:
    """One probability bin [lo, hi): mean predicted probability, realised hit rate, count."""

    lo: float
    hi: float
    predicted: float
    realised: float
    count: int


@dataclass(frozen=True)
class Calibration:
    """Reliability table, Brier score, expected calibration error and the base-rate Brier score."""

    brier: float
    ece: float
    base_rate: float
    brier_base_rate: float
    bins: tuple[CalibrationBin, ...]

    @property
    def skill(self) -> float:
        """Brier skill score against always predicting the base rate (> 0: better than the base rate)."""
        if not (self.brier_base_rate > 0):
            return math.nan
        return 1.0 - self.brier / self.brier_base_rate


def calibration(p: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = 10) -> Calibration:
    """Equal-width reliability bins over [0, 1], Brier score and ECE (count-weighted |predicted - realised|)."""
    pa = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    ya = np.asarray(y, dtype=np.float64)
    if pa.shape != ya.shape:
        raise ValueError(f"probabilities and outcomes differ in shape: {pa.shape} vs {ya.shape}")
    n = pa.size
    if n == 0:
        return Calibration(math.nan, math.nan, math.nan, math.nan, ())
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.minimum(np.searchsorted(edges, pa, side="right") - 1, n_bins - 1)
    bins: list[CalibrationBin] = []
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        c = int(m.sum())
        if c == 0:
            continue
        pred, real = float(pa[m].mean()), float(ya[m].mean())
        ece += c / n * abs(pred - real)
        bins.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), pred, real, c))
    base = float(ya.mean())
    return Calibration(brier_score(pa, ya), ece, base, brier_score(np.full(n, base), ya), tuple(bins))
