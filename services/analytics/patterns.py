"""Candlestick and chart patterns, support/resistance and trend over a window of bars (GetPatterns).

Candlesticks come from ``aiots.core.patterns.scan_candlesticks`` (TA-Lib-identical, -100/0/100 per
bar; +100 bullish, -100 bearish); chart patterns, levels and the trend from
``aiots.core.chart_patterns.detect_chart_patterns``. Indices are bar positions; the conversion layer
turns them into bar times. The ADX of the trend is ADX(14) from the core (NaN when too few bars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiots.core import chart_patterns as cp
from aiots.core import patterns as cdl

#: strength of a candlestick hit (TA-Lib flags carry no graded strength)
CANDLE_STRENGTH = 0.5


@dataclass(frozen=True)
class PatternHit:
    """A pattern between bar indices ``start`` and ``end`` (inclusive)."""

    name: str
    category: str
    direction: str
    start: int
    end: int
    key_prices: dict[str, float] = field(default_factory=dict)
    strength: float = CANDLE_STRENGTH


@dataclass(frozen=True)
class LevelHit:
    price: float
    kind: str
    touches: int
    strength: float
    first: int
    last: int


@dataclass(frozen=True)
class TrendInfo:
    direction: str
    slope: float
    r_squared: float
    adx: float


@dataclass(frozen=True)
class PatternScan:
    """Everything found in one window."""

    patterns: list[PatternHit]
    levels: list[LevelHit]
    trend: TrendInfo


def _direction(d: int) -> str:
    return "bullish" if d > 0 else "bearish" if d < 0 else "neutral"


def scan(bars: Any) -> PatternScan:
    """Scan a storage ``Bars`` (oldest first) for candlestick and chart patterns."""
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    hits: list[PatternHit] = []
    for name, flags in cdl.scan_candlesticks(o, h, lo, c).items():
        for i in np.flatnonzero(np.asarray(flags)).tolist():
            f = int(flags[i])
            hits.append(
                PatternHit(
                    name=name,
                    category="candlestick",
                    direction=_direction(f),
                    start=i,
                    end=i,
                    key_prices={"open": float(o[i]), "high": float(h[i]), "low": float(lo[i]), "close": float(c[i])},
                )
            )
    analysis = cp.detect_chart_patterns(o, h, lo, c, v)
    for p in analysis.patterns:
        hits.append(
            PatternHit(
                name=p.kind,
                category="chart",
                direction=_direction(p.direction),
                start=p.start_index,
                end=p.end_index,
                key_prices={k: float(x) for k, x in p.key_prices.items()},
                strength=float(p.strength),
            )
        )
    hits.sort(key=lambda x: (x.start, x.end, x.name))
    levels = [
        LevelHit(float(lv.price), lv.kind, int(lv.touches), float(lv.strength), lv.first_index, lv.last_index)
        for lv in sorted(analysis.levels, key=lambda lv: lv.price)
    ]
    t = analysis.trend
    trend = TrendInfo(
        direction={1: "up", -1: "down"}.get(int(t.direction), "sideways"),
        slope=float(t.slope),
        r_squared=float(t.r_squared),
        adx=float(t.adx) if t.adx is not None else math.nan,
    )
    return PatternScan(hits, levels, trend)
