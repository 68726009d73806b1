"""Benchmark: aiots.core.patterns vs TA-Lib on 1,000,000 random OHLC bars (same run, same data).

Prints per-pattern best-of-5 times and the ratio ours/TA-Lib (< 1 means faster), plus
scan_candlesticks (all 15 on one conversion) and the chart-pattern detector on 5,000 bars.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiots.core import patterns as P
from aiots.core.chart_patterns import detect_chart_patterns
from tests.unit.core._pattern_bars import random_bars

N = 1_000_000
REPEAT = 5


def best(fn: Callable[..., Any], *args: Any) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    try:
        import talib
    except ImportError:
        print("talib not installed; nothing to compare against")
        return
    o, h, lo, c = random_bars(N, seed=1)
    print(f"{N:,} bars, best of {REPEAT}; ms")
    print(f"{'pattern':24s} {'aiots':>8s} {'talib':>8s} {'ratio':>6s}")
    total_ours = total_ref = 0.0
    for name, fn in P.CANDLESTICK_PATTERNS.items():
        ours = best(fn, o, h, lo, c)
        ref = best(getattr(talib, P.TALIB_NAMES[name]), o, h, lo, c)
        total_ours += ours
        total_ref += ref
        print(f"{name:24s} {ours * 1e3:8.1f} {ref * 1e3:8.1f} {ours / ref:6.2f}")
    scan = best(P.scan_candlesticks, o, h, lo, c)
    print(f"{'sum of 15':24s} {total_ours * 1e3:8.1f} {total_ref * 1e3:8.1f} {total_ours / total_ref:6.2f}")
    print(f"{'scan_candlesticks':24s} {scan * 1e3:8.1f} {total_ref * 1e3:8.1f} {scan / total_ref:6.2f}")
    lists = [a.tolist() for a in (o[:100_000], h[:100_000], lo[:100_000], c[:100_000])]
    print(f"{'doji, Python lists 100k':24s} {best(P.cdl_doji, *lists) * 1e3:8.1f}")
    vol = np.full(5000, 1e6)
    chart = best(detect_chart_patterns, o[:5000], h[:5000], lo[:5000], c[:5000], vol)
    print(f"detect_chart_patterns, 5,000 bars: {chart * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
