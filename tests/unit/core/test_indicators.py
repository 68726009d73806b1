"""Batch parity with TA-Lib (the ``talib`` package is the oracle) on 1M-point random walks and on
every real OHLCV file in shared/data, plus lookback parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib
from talib import abstract

from aiots.core import indicators as ind

from ._indicator_cases import CASES, Arrays, assert_parity, load_bars, ohlcv_files, random_walk

N_BIG = 1_000_000


@pytest.fixture(scope="module")
def big_walk() -> Arrays:
    return random_walk(N_BIG)


@pytest.fixture(scope="module")
def real_bars(shared_data: Path) -> dict[str, Arrays]:
    files = ohlcv_files(shared_data)
    assert len(files) >= 10
    return {p.name: load_bars(p) for p in files}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_random_walk_1m(name: str, big_walk: Arrays) -> None:
    ours, oracle = CASES[name]
    assert_parity(ours(*big_walk), oracle(*big_walk), f"{name} rw1M")


@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_real_bars(name: str, real_bars: dict[str, Arrays]) -> None:
    ours, oracle = CASES[name]
    for fname, bars in real_bars.items():
        assert_parity(ours(*bars), oracle(*bars), f"{name} {fname}")


def _flat_bars() -> Arrays:
    """Prices with exactly flat stretches, rounding ties (0.1+0.2 vs 0.3), zero/tiny volume."""
    r = np.random.default_rng(5)
    n = 3000
    c = np.round(100 + np.cumsum(r.normal(0, 0.5, n)), 2)
    for s in range(200, n, 400):
        c[s : s + 60] = c[s]
    c[1000:1100] = 0.1 + 0.2
    c[1100:1110] = 0.3
    h = c + np.where(r.random(n) < 0.5, 0, np.round(r.random(n), 2))
    lo = c - np.where(r.random(n) < 0.5, 0, np.round(r.random(n), 2))
    h[1500:1600] = c[1500:1600]
    lo[1500:1600] = c[1500:1600]
    v = np.round(r.lognormal(3, 2, n))
    v[300:320] = 0
    v[2000:2050] = 0.001
    return h, lo, c, v


@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_flat_and_ties(name: str, scale: float) -> None:
    """TA-Lib 0.8 zero tests (scaled ties, empty MFI windows) on degenerate data at any price scale."""
    h, lo, c, v = _flat_bars()
    bars = (h * scale, lo * scale, c * scale, v)
    ours, oracle = CASES[name]
    assert_parity(ours(*bars), oracle(*bars), f"{name} x{scale}")


@pytest.mark.parametrize("period", [1, 2, 3, 14, 50])
def test_parity_parameter_sweep(period: int) -> None:
    h, lo, c, v = random_walk(3000, seed=period)
    p2 = max(period, 2)
    pairs = [
        (ind.sma(c, period=period), talib.SMA(c, period)),
        (ind.ema(c, period=period), talib.EMA(c, period)),
        (ind.wma(c, period=period), talib.WMA(c, period)),
        (ind.dema(c, period=period), talib.DEMA(c, period)),
        (ind.tema(c, period=period), talib.TEMA(c, period)),
        (ind.kama(c, period=period), talib.KAMA(c, period)),
        (ind.rsi(c, period=p2), talib.RSI(c, p2)),
        (ind.atr(h, lo, c, period=period), talib.ATR(h, lo, c, period)),
        (ind.natr(h, lo, c, period=period), talib.NATR(h, lo, c, period)),
        (ind.minus_di(h, lo, c, period=period), talib.MINUS_DI(h, lo, c, period)),
        (ind.adx(h, lo, c, period=p2), talib.ADX(h, lo, c, p2)),
        (ind.cci(h, lo, c, period=p2), talib.CCI(h, lo, c, p2)),
        (ind.willr(h, lo, c, period=p2), talib.WILLR(h, lo, c, p2)),
        (ind.mfi(h, lo, c, v, period=p2), talib.MFI(h, lo, c, v, p2)),
        (ind.aroon(h, lo, period=p2), talib.AROON(h, lo, p2)),
        (ind.stddev(c, period=p2), talib.STDDEV(c, p2, 1.0)),
        (ind.bbands(c, period=p2, nbdev_up=1.0, nbdev_dn=1.0), talib.BBANDS(c, p2, 1.0, 1.0, 0)),
        (ind.roc(c, period=period), talib.ROC(c, period)),
        (ind.mom(c, period=period), talib.MOM(c, period)),
        (ind.macd(c, fast=p2, slow=p2 + 5, signal=period), talib.MACD(c, p2, p2 + 5, period)),
        (ind.macd(c, fast=26, slow=12, signal=9), talib.MACD(c, 26, 12, 9)),
        (ind.stoch(h, lo, c, fastk=period, slowk=period, slowd=2), talib.STOCH(h, lo, c, period, period, 0, 2, 0)),
        (ind.stochrsi(c, period=p2, fastk=period, fastd=period), talib.STOCHRSI(c, p2, period, period, 0)),
        (ind.adosc(h, lo, c, v, fast=p2 + 3, slow=p2), talib.ADOSC(h, lo, c, v, p2 + 3, p2)),
        (ind.sar(h, lo, acceleration=0.05, maximum=0.03), talib.SAR(h, lo, 0.05, 0.03)),
    ]
    for k, (a, b) in enumerate(pairs):
        assert_parity(a, b, f"sweep[{k}] period={period}")


_TALIB_NAME = {"plus_di_1": "PLUS_DI"}
_PARAM_MAP = {
    "period": "timeperiod",
    "fast": "fastperiod",
    "slow": "slowperiod",
    "signal": "signalperiod",
    "nbdev_up": "nbdevup",
    "nbdev_dn": "nbdevdn",
    "fastk": "fastk_period",
    "slowk": "slowk_period",
    "slowd": "slowd_period",
    "fastd": "fastd_period",
}


@pytest.mark.parametrize("name", sorted(set(ind.INDICATORS) - {"vwap"}))
def test_lookback_and_defaults_match_talib(name: str) -> None:
    spec = ind.INDICATORS[name]
    fn = abstract.Function(name.upper())
    ta_params = dict(fn.info["parameters"])
    for ours, default in spec.params.items():
        key = _PARAM_MAP.get(ours, ours)
        if name == "stochrsi" and ours == "fastk":
            key = "fastk_period"
        assert ta_params[key] == default, f"{name}.{ours} default"
    assert spec.lookback() == fn.lookback
    assert ind.lookback(name) == fn.lookback


def test_lookback_errors() -> None:
    with pytest.raises(ValueError, match="unknown indicator 'nope'"):
        ind.lookback("nope")
    with pytest.raises(ValueError, match="no parameter"):
        ind.lookback("rsi", fast=3)
    with pytest.raises(ValueError, match="period must be >= 2, got 1"):
        ind.lookback("rsi", period=1)


def test_registry_calls_every_indicator_by_name() -> None:
    bars = dict(zip(("high", "low", "close", "volume"), random_walk(500), strict=True))
    for name, spec in ind.INDICATORS.items():
        out = spec.func(*(bars[k] for k in spec.inputs), **spec.params)
        outs = out if isinstance(out, tuple) else (out,)
        assert len(outs) == len(spec.outputs), name
        for o in outs:
            assert o.shape == (500,)
            assert np.isnan(o[: spec.lookback()]).all() and not np.isnan(o[spec.lookback() :]).any(), name


def _cpu_has_fma() -> bool:
    try:
        return " fma " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


@pytest.mark.skipif(not _cpu_has_fma(), reason="TA-Lib runs its FMA build of TA_SAR only on FMA CPUs")
def test_sar_bit_identical_to_talib_fma_build() -> None:
    """SAR's move toward the extreme point is fma(af, ep - sar, sar), what TA-Lib 0.8's FMA build runs:
    the reversals (a comparison of the SAR with the bar's low/high) and every value match it exactly."""
    h, lo, _c, _v = random_walk(200_000, seed=21)
    ours, ref = ind.sar(h, lo), talib.SAR(h, lo)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.skipif(not _cpu_has_fma(), reason="TA-Lib runs its FMA build of TA_SAR only on FMA CPUs")
@pytest.mark.parametrize(("acc", "amax"), [(0.02, 0.2), (0.02, 0.02), (0.1, 0.05), (0.0, 0.2), (0.2, 0.2), (0.01, 0.5)])
def test_sar_acceleration_steps_bit_identical_to_talib(acc: float, amax: float) -> None:
    """The acceleration factor's step as min(af + (acc on a new extreme, else -0.0), amax) and the
    extreme point and clamp as max/min selects: TA-Lib's bits at every acceleration/maximum,
    including a factor pinned at the maximum from the start (acc == amax, acc > amax: TA-Lib clamps
    acc) and a zero acceleration, and the SAR class gives the batch values exactly."""
    h, lo, _c, _v = random_walk(50_000, seed=22)
    ours = ind.sar(h, lo, acceleration=acc, maximum=amax)
    np.testing.assert_array_equal(ours, talib.SAR(h, lo, acc, amax))
    np.testing.assert_array_equal(ind.SAR(acc, amax).update_many(h, lo), ours)
