"""Test data for the pattern tests: realistic random OHLC bars and the real CSV bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

F64 = npt.NDArray[np.float64]
OHLC = tuple[F64, F64, F64, F64]


def random_bars(n: int, seed: int) -> OHLC:
    """Random OHLC bars rounded to cents, rich in the cases candle rules branch on.

    A log-random walk with drifting regimes (runs of rising/falling closes), ordinary and large
    opening gaps, ~7% exact doji (open == close), many bars with no upper or lower shadow, some
    with very long shadows, and cent rounding so that equal prices across bars are common.
    """
    rng = np.random.default_rng(seed)
    vol = 0.01 * np.exp(rng.normal(0.0, 0.3, n))
    drift = np.repeat(rng.choice([-1.0, 0.0, 1.0], size=n // 8 + 1), 8)[:n] * 0.004
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1.0, n) * vol + drift))
    gap = rng.normal(0.0, 1.0, n) * vol * 0.4
    gap[rng.random(n) < 0.08] *= 6.0
    prev = np.concatenate([[close[0]], close[:-1]])
    open_ = prev * np.exp(gap)
    doji = rng.random(n) < 0.07
    open_[doji] = close[doji]
    span = close * vol
    up = np.abs(rng.normal(0.0, 0.5, n)) * span
    dn = np.abs(rng.normal(0.0, 0.5, n)) * span
    v = rng.random(n)
    up[v < 0.15] = 0.0
    dn[(v > 0.1) & (v < 0.25)] = 0.0
    w = rng.random(n)
    dn[w < 0.05] *= 6.0
    up[(w > 0.05) & (w < 0.1)] *= 6.0
    o = np.round(open_, 2)
    c = np.round(close, 2)
    h = np.maximum(np.round(np.maximum(open_, close) + up, 2), np.maximum(o, c))
    lo = np.minimum(np.round(np.minimum(open_, close) - dn, 2), np.minimum(o, c))
    return o, h, lo, c


def ohlcv_files(shared_data: Path) -> list[Path]:
    """Every CSV under ohlcv/ that carries open/high/low/close (close-only files skipped)."""
    out = []
    for path in sorted((shared_data / "ohlcv").glob("*.csv")):
        header = path.open().readline().strip().split(",")
        if {"open", "high", "low", "close"} <= set(header):
            out.append(path)
    return out


def load_ohlcv(path: Path) -> tuple[F64, F64, F64, F64, F64]:
    """(open, high, low, close, volume) as float64 arrays from one CSV."""
    df = pd.read_csv(path)
    cols = [df[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")]
    vol = df["volume"].to_numpy(dtype=np.float64) if "volume" in df else np.ones(len(df))
    return cols[0], cols[1], cols[2], cols[3], vol
