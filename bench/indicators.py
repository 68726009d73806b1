"""Benchmark: aiots.core.indicators vs TA-Lib vs pandas on the same data, in one process.

Run: ``python bench/indicators.py [--n 1000000] [--repeat 7] [--clock cpu|wall] [--stat median|min]
[--only rsi,willr]``. Prints the time per call (median or minimum over the repeats) and the ratio
ours/TA-Lib for every batch function, then ns per streaming update() from Python (EMA, RSI) vs
``talib.stream`` on a 10,000-bar history vs a plain-Python O(1) EMA. Ours and TA-Lib are timed
interleaved (ours, TA-Lib, ours, ...) so a burst of load from elsewhere hits both. ``--clock cpu``
(default) measures this process's CPU time, which is far less disturbed than wall time when the
machine is shared (every kernel here is single-threaded); ``--clock wall`` is ``perf_counter``.
On a busy machine ``--stat min`` (the least-disturbed run) is the steadier ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import talib
from talib import stream as tstream
from talib._ta_lib import MA_Type

from aiots.core import indicators as ind
from aiots.core.conventions import NS_PER_S


def _walk(n: int) -> tuple[np.ndarray, ...]:
    r = np.random.default_rng(7)
    c = 100.0 * np.exp(np.cumsum(r.normal(0.0, 0.001, n)))
    o = c * np.exp(r.normal(0.0, 0.0005, n))
    h = np.maximum(o, c) * np.exp(np.abs(r.normal(0.0, 0.0007, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(r.normal(0.0, 0.0007, n)))
    v = np.round(r.lognormal(10.0, 1.0, n))
    return h, lo, c, v


_clock: Callable[[], float] = time.process_time
_stat: Callable[[list[float]], float] = statistics.median


def _median(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = _clock()
        fn()
        times.append(_clock() - t0)
    return _stat(times)


def _interleaved(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Each function's statistic over ``repeat`` rounds of one call each, in turn."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times, strict=True):
            t0 = _clock()
            fn()
            ts.append(_clock() - t0)
    return [_stat(ts) for ts in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--stat", choices=("median", "min"), default="median")
    ap.add_argument("--only", default="", help="comma-separated row prefixes (e.g. rsi,willr)")
    args = ap.parse_args()
    global _clock, _stat
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    _stat = statistics.median if args.stat == "median" else min
    only = tuple(p for p in args.only.split(",") if p)
    h, lo, c, v = _walk(args.n)
    cs = pd.Series(c)
    rows: list[tuple[str, Callable[[], Any], Callable[[], Any], Callable[[], Any] | None]] = [
        ("sma(30)", lambda: ind.sma(c, period=30), lambda: talib.SMA(c, 30), lambda: cs.rolling(30).mean()),
        (
            "ema(30)",
            lambda: ind.ema(c, period=30),
            lambda: talib.EMA(c, 30),
            lambda: cs.ewm(span=30, adjust=False).mean(),
        ),
        ("wma(30)", lambda: ind.wma(c, period=30), lambda: talib.WMA(c, 30), None),
        ("dema(30)", lambda: ind.dema(c, period=30), lambda: talib.DEMA(c, 30), None),
        ("tema(30)", lambda: ind.tema(c, period=30), lambda: talib.TEMA(c, 30), None),
        ("kama(30)", lambda: ind.kama(c, period=30), lambda: talib.KAMA(c, 30), None),
        (
            "bbands(20)",
            lambda: ind.bbands(c),
            lambda: talib.BBANDS(c, 20, 2.0, 2.0, MA_Type.SMA),
            lambda: (cs.rolling(20).mean(), cs.rolling(20).std(ddof=0)),
        ),
        ("sar", lambda: ind.sar(h, lo), lambda: talib.SAR(h, lo), None),
        (
            "vwap (no TA-Lib; vs numpy cumsum)",
            lambda: ind.vwap(h, lo, c, v),
            lambda: np.cumsum((h + lo + c) / 3 * v) / np.cumsum(v),
            None,
        ),
        ("rsi(14)", lambda: ind.rsi(c), lambda: talib.RSI(c, 14), None),
        ("macd", lambda: ind.macd(c), lambda: talib.MACD(c), None),
        ("stoch", lambda: ind.stoch(h, lo, c), lambda: talib.STOCH(h, lo, c), None),
        ("stochrsi", lambda: ind.stochrsi(c), lambda: talib.STOCHRSI(c, 14, 5, 3), None),
        ("adx(14)", lambda: ind.adx(h, lo, c), lambda: talib.ADX(h, lo, c), None),
        ("plus_di(14)", lambda: ind.plus_di(h, lo, c), lambda: talib.PLUS_DI(h, lo, c), None),
        ("minus_di(14)", lambda: ind.minus_di(h, lo, c), lambda: talib.MINUS_DI(h, lo, c), None),
        ("cci(14)", lambda: ind.cci(h, lo, c), lambda: talib.CCI(h, lo, c), None),
        ("willr(14)", lambda: ind.willr(h, lo, c), lambda: talib.WILLR(h, lo, c), None),
        ("mfi(14)", lambda: ind.mfi(h, lo, c, v), lambda: talib.MFI(h, lo, c, v), None),
        ("roc(10)", lambda: ind.roc(c), lambda: talib.ROC(c), lambda: cs.pct_change(10) * 100),
        ("mom(10)", lambda: ind.mom(c), lambda: talib.MOM(c), lambda: cs.diff(10)),
        ("aroon(14)", lambda: ind.aroon(h, lo), lambda: talib.AROON(h, lo), None),
        ("atr(14)", lambda: ind.atr(h, lo, c), lambda: talib.ATR(h, lo, c), None),
        ("natr(14)", lambda: ind.natr(h, lo, c), lambda: talib.NATR(h, lo, c), None),
        ("trange", lambda: ind.trange(h, lo, c), lambda: talib.TRANGE(h, lo, c), None),
        ("stddev(5)", lambda: ind.stddev(c), lambda: talib.STDDEV(c, 5, 1.0), lambda: cs.rolling(5).std(ddof=0)),
        ("obv", lambda: ind.obv(c, v), lambda: talib.OBV(c, v), None),
        ("ad", lambda: ind.ad(h, lo, c, v), lambda: talib.AD(h, lo, c, v), None),
        ("adosc", lambda: ind.adosc(h, lo, c, v), lambda: talib.ADOSC(h, lo, c, v), None),
    ]
    print(f"batch, n={args.n:,}, {args.stat} of {args.repeat} interleaved runs (ms, {args.clock} time)")
    print(f"| {'indicator':<34} | {'ours':>8} | {'TA-Lib':>8} | {'pandas':>8} | {'ours/TA-Lib':>11} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for name, ours, ta, pdf in rows:
        if only and not name.startswith(only):
            continue
        t_o, t_t = (t * 1e3 for t in _interleaved([ours, ta], args.repeat))
        t_p = f"{_median(pdf, args.repeat) * 1e3:8.2f}" if pdf else f"{'-':>8}"
        print(f"| {name:<34} | {t_o:8.2f} | {t_t:8.2f} | {t_p} | {t_o / t_t:11.2f} |")

    hist = c[:10_000].copy()
    n_up = 200_000
    xs = c[10_000 : 10_000 + n_up].tolist()

    def per_update(fn: Callable[[float], Any], xs_: list[float]) -> float:
        best = []
        for _ in range(max(3, args.repeat // 2)):
            t0 = _clock()
            for x in xs_:
                fn(x)
            best.append((_clock() - t0) / len(xs_) * NS_PER_S)
        return float(statistics.median(best))

    e = ind.EMA(30)
    e.update_many(hist)
    r = ind.RSI(14)
    r.update_many(hist)

    class PyEMA:
        def __init__(self, period: int) -> None:
            self.k = 2.0 / (period + 1)
            self.v = float(hist[-1])

        def update(self, x: float) -> float:
            self.v = (x - self.v) * self.k + self.v
            return self.v

    pe = PyEMA(30)
    tail = xs[:2_000]
    buf = hist.copy()
    print(f"\nstreaming, ns per update() called from Python ({args.clock} time)")
    print(f"| {'indicator':<10} | {'ours':>8} | {'talib.stream (10k history)':>26} | {'plain-Python EMA':>16} |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 28}|{'-' * 18}|")
    t_ours = per_update(e.update, xs)
    t_ta = per_update(lambda x: tstream.EMA(buf, 30), tail)
    t_py = per_update(pe.update, xs)
    print(f"| {'EMA(30)':<10} | {t_ours:8.0f} | {t_ta:26.0f} | {t_py:16.0f} |")
    t_ours = per_update(r.update, xs)
    t_ta = per_update(lambda x: tstream.RSI(buf, 14), tail)
    print(f"| {'RSI(14)':<10} | {t_ours:8.0f} | {t_ta:26.0f} | {'-':>16} |")


if __name__ == "__main__":
    main()
