"""Shared cases: each indicator with its TA-Lib oracle call, and data generators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import talib

from aiots.core import indicators as ind

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Call = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Any]

# name -> (ours, TA-Lib oracle); non-default parameters on purpose where they exercise more code.
CASES: dict[str, tuple[Call, Call]] = {
    "sma": (lambda h, lo, c, v: ind.sma(c, period=30), lambda h, lo, c, v: talib.SMA(c, 30)),
    "ema": (lambda h, lo, c, v: ind.ema(c, period=21), lambda h, lo, c, v: talib.EMA(c, 21)),
    "wma": (lambda h, lo, c, v: ind.wma(c, period=30), lambda h, lo, c, v: talib.WMA(c, 30)),
    "dema": (lambda h, lo, c, v: ind.dema(c, period=30), lambda h, lo, c, v: talib.DEMA(c, 30)),
    "tema": (lambda h, lo, c, v: ind.tema(c, period=30), lambda h, lo, c, v: talib.TEMA(c, 30)),
    "kama": (lambda h, lo, c, v: ind.kama(c, period=30), lambda h, lo, c, v: talib.KAMA(c, 30)),
    "bbands": (
        lambda h, lo, c, v: ind.bbands(c, period=20, nbdev_up=2.0, nbdev_dn=1.5),
        lambda h, lo, c, v: talib.BBANDS(c, 20, 2.0, 1.5, 0),
    ),
    "sar": (lambda h, lo, c, v: ind.sar(h, lo), lambda h, lo, c, v: talib.SAR(h, lo, 0.02, 0.2)),
    "rsi": (lambda h, lo, c, v: ind.rsi(c), lambda h, lo, c, v: talib.RSI(c, 14)),
    "macd": (lambda h, lo, c, v: ind.macd(c), lambda h, lo, c, v: talib.MACD(c, 12, 26, 9)),
    "stoch": (lambda h, lo, c, v: ind.stoch(h, lo, c), lambda h, lo, c, v: talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)),
    "stochrsi": (lambda h, lo, c, v: ind.stochrsi(c), lambda h, lo, c, v: talib.STOCHRSI(c, 14, 5, 3, 0)),
    "adx": (lambda h, lo, c, v: ind.adx(h, lo, c), lambda h, lo, c, v: talib.ADX(h, lo, c, 14)),
    "plus_di": (lambda h, lo, c, v: ind.plus_di(h, lo, c), lambda h, lo, c, v: talib.PLUS_DI(h, lo, c, 14)),
    "minus_di": (lambda h, lo, c, v: ind.minus_di(h, lo, c), lambda h, lo, c, v: talib.MINUS_DI(h, lo, c, 14)),
    "plus_di_1": (
        lambda h, lo, c, v: ind.plus_di(h, lo, c, period=1),
        lambda h, lo, c, v: talib.PLUS_DI(h, lo, c, 1),
    ),
    "cci": (lambda h, lo, c, v: ind.cci(h, lo, c), lambda h, lo, c, v: talib.CCI(h, lo, c, 14)),
    "willr": (lambda h, lo, c, v: ind.willr(h, lo, c), lambda h, lo, c, v: talib.WILLR(h, lo, c, 14)),
    "mfi": (lambda h, lo, c, v: ind.mfi(h, lo, c, v), lambda h, lo, c, v: talib.MFI(h, lo, c, v, 14)),
    "roc": (lambda h, lo, c, v: ind.roc(c), lambda h, lo, c, v: talib.ROC(c, 10)),
    "mom": (lambda h, lo, c, v: ind.mom(c), lambda h, lo, c, v: talib.MOM(c, 10)),
    "aroon": (lambda h, lo, c, v: ind.aroon(h, lo), lambda h, lo, c, v: talib.AROON(h, lo, 14)),
    "atr": (lambda h, lo, c, v: ind.atr(h, lo, c), lambda h, lo, c, v: talib.ATR(h, lo, c, 14)),
    "natr": (lambda h, lo, c, v: ind.natr(h, lo, c), lambda h, lo, c, v: talib.NATR(h, lo, c, 14)),
    "trange": (lambda h, lo, c, v: ind.trange(h, lo, c), lambda h, lo, c, v: talib.TRANGE(h, lo, c)),
    "stddev": (
        lambda h, lo, c, v: ind.stddev(c, period=5, nbdev=1.5),
        lambda h, lo, c, v: talib.STDDEV(c, 5, 1.5),
    ),
    "obv": (lambda h, lo, c, v: ind.obv(c, v), lambda h, lo, c, v: talib.OBV(c, v)),
    "ad": (lambda h, lo, c, v: ind.ad(h, lo, c, v), lambda h, lo, c, v: talib.AD(h, lo, c, v)),
    "adosc": (lambda h, lo, c, v: ind.adosc(h, lo, c, v), lambda h, lo, c, v: talib.ADOSC(h, lo, c, v, 3, 10)),
}

# streaming class name -> (constructor args, feeder, batch oracle)
STREAMS: dict[str, tuple[tuple[Any, ...], Callable[[Any, Arrays], Any], Call]] = {
    "EMA": ((21,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.ema(c, period=21)),
    "SMA": ((30,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.sma(c, period=30)),
    "WMA": ((30,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.wma(c, period=30)),
    "DEMA": ((30,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.dema(c, period=30)),
    "TEMA": ((30,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.tema(c, period=30)),
    "KAMA": ((30,), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.kama(c, period=30)),
    "BBands": (
        (20, 2.0, 1.5),
        lambda o, d: o.update_many(d[2]),
        lambda h, lo, c, v: ind.bbands(c, period=20, nbdev_up=2.0, nbdev_dn=1.5),
    ),
    "SAR": ((), lambda o, d: o.update_many(d[0], d[1]), lambda h, lo, c, v: ind.sar(h, lo)),
    "VWAP": ((), lambda o, d: o.update_many(*d), lambda h, lo, c, v: ind.vwap(h, lo, c, v)),
    "RSI": ((), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.rsi(c)),
    "MACD": ((), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.macd(c)),
    "Stoch": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.stoch(h, lo, c)),
    "StochRSI": ((), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.stochrsi(c)),
    "ADX": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.adx(h, lo, c)),
    "CCI": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.cci(h, lo, c)),
    "WillR": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.willr(h, lo, c)),
    "MFI": ((), lambda o, d: o.update_many(*d), lambda h, lo, c, v: ind.mfi(h, lo, c, v)),
    "ROC": ((), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.roc(c)),
    "MOM": ((), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.mom(c)),
    "Aroon": ((), lambda o, d: o.update_many(d[0], d[1]), lambda h, lo, c, v: ind.aroon(h, lo)),
    "ATR": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.atr(h, lo, c)),
    "NATR": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.natr(h, lo, c)),
    "TRange": ((), lambda o, d: o.update_many(*d[:3]), lambda h, lo, c, v: ind.trange(h, lo, c)),
    "StdDev": ((5, 1.5), lambda o, d: o.update_many(d[2]), lambda h, lo, c, v: ind.stddev(c, period=5, nbdev=1.5)),
    "OBV": ((), lambda o, d: o.update_many(d[2], d[3]), lambda h, lo, c, v: ind.obv(c, v)),
    "AD": ((), lambda o, d: o.update_many(*d), lambda h, lo, c, v: ind.ad(h, lo, c, v)),
    "ADOSC": ((), lambda o, d: o.update_many(*d), lambda h, lo, c, v: ind.adosc(h, lo, c, v)),
}


def random_walk(n: int, seed: int = 7) -> Arrays:
    """Positive OHLCV random walk (0.1% log steps, consistent high/low, log-normal volume)."""
    r = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(r.normal(0.0, 0.001, n)))
    o = c * np.exp(r.normal(0.0, 0.0005, n))
    h = np.maximum(o, c) * np.exp(np.abs(r.normal(0.0, 0.0007, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(r.normal(0.0, 0.0007, n)))
    v = np.round(r.lognormal(10.0, 1.0, n))
    return h, lo, c, v


def load_bars(path: Path) -> Arrays:
    """high, low, close, volume columns of a normalised OHLCV csv (PROVENANCE.md schema)."""
    names = path.read_text().splitlines()[0].split(",")
    cols = [names.index(k) for k in ("high", "low", "close", "volume")]
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=cols, dtype=np.float64)
    return data[:, 0].copy(), data[:, 1].copy(), data[:, 2].copy(), data[:, 3].copy()


def ohlcv_files(shared: Path) -> list[Path]:
    """Every normalised OHLCV file that has high/low/volume columns."""
    out = []
    for p in sorted((shared / "ohlcv").glob("*.csv")):
        header = p.read_text().splitlines()[0].split(",")
        if {"high", "low", "close", "volume"} <= set(header):
            out.append(p)
    return out


def as_tuple(x: Any) -> tuple[np.ndarray, ...]:
    return x if isinstance(x, tuple) else (x,)


def assert_parity(ours: Any, oracle: Any, label: str, rtol: float = 1e-9) -> None:
    """Identical NaN positions and |a-b| <= rtol * max(1, |b|) (relative, absolute near zero)."""
    a_all, b_all = as_tuple(ours), as_tuple(oracle)
    assert len(a_all) == len(b_all), label
    for k, (a, b) in enumerate(zip(a_all, b_all, strict=True)):
        assert a.dtype == np.float64 and a.shape == b.shape, f"{label}[{k}] dtype/shape"
        na, nb = np.isnan(a), np.isnan(b)
        bad = np.flatnonzero(na != nb)
        assert bad.size == 0, f"{label}[{k}] NaN positions differ at {bad[:5]}"
        m = ~na
        err = np.abs(a[m] - b[m]) / np.maximum(1.0, np.abs(b[m]))
        if err.size:
            i = int(np.argmax(err))
            assert err[i] <= rtol, f"{label}[{k}] err {err[i]:.3g} at {np.flatnonzero(m)[i]}"
