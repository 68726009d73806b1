"""The one streaming feature state: every value equals TA-Lib's batch function over the same bars,
also across a pickle (the checkpoint) and for the named live indicators it carries.

Oracle: TA-Lib on the real AAPL bars of the data fixture; numpy for the rolling windows."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from aiots.core import indicators as ind
from aiots.core.conventions import NS_PER_MIN
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import REWARM_GAP_NS, Bar, RollingVariance, SymbolFeatures

P = FeatureParams(rv_bars=30)


def _bars(shared_data: Path) -> tuple[pd.DataFrame, list[Bar]]:
    df = pd.read_csv(shared_data / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv")
    rows = enumerate(df.itertuples())
    bars = [Bar("AAPL", i * NS_PER_MIN, r.open, r.high, r.low, r.close, r.volume) for i, r in rows]
    return df, bars


def _named() -> dict[str, tuple[object, tuple[str, ...]]]:
    return {"rsi": (ind.RSI(14), ("real",)), "obv": (ind.OBV(), ("close", "volume"))}


def test_features_and_named_streams_match_talib(shared_data: Path) -> None:
    df, bars = _bars(shared_data)
    f = SymbolFeatures(P, _named())
    snaps = [f.update(b) for b in bars]
    h, lo, c, v = (df[k].to_numpy(float) for k in ("high", "low", "close", "volume"))
    last, before = snaps[-1], snaps[-2]
    assert last is not None and before is not None and last.prev_bar == bars[-2]
    assert last.atr == pytest.approx(talib.ATR(h, lo, c, 14)[-1], rel=1e-12)
    assert last.rsi == pytest.approx(talib.RSI(c, 14)[-1], rel=1e-12)
    assert last.rsi_prev == pytest.approx(talib.RSI(c, 14)[-2], rel=1e-12)
    assert last.adx == pytest.approx(talib.ADX(h, lo, c, 14)[-1], rel=1e-12)
    assert last.minus_di == pytest.approx(talib.MINUS_DI(h, lo, c, 14)[-1], rel=1e-12)
    assert last.ema_fast == pytest.approx(talib.EMA(c, 20)[-1], rel=1e-12)
    assert last.ema_fast_prev == pytest.approx(talib.EMA(c, 20)[-2], rel=1e-12)
    up, mid, low = talib.BBANDS(c, 20, 2.0, 2.0)
    assert (last.bb_upper, last.bb_middle, last.bb_lower) == pytest.approx((up[-1], mid[-1], low[-1]), rel=1e-9)
    assert last.volume_avg == pytest.approx(v[-21:-1].mean(), rel=1e-12)
    assert (last.resistance, last.support) == (h[-21:-1].max(), lo[-21:-1].min())
    # consecutive bars (one minute apart): the last 30 log returns, annualised over 252 x 390 minutes
    r = np.diff(np.log(c))[-30:]
    assert last.realized_vol == pytest.approx(math.sqrt(r.var(ddof=1) * 252 * 390), rel=1e-9)
    assert float(f.named["rsi"].value) == pytest.approx(talib.RSI(c, 14)[-1], rel=1e-12)
    assert float(f.named["obv"].value) == pytest.approx(talib.OBV(c, v)[-1], rel=1e-12)
    assert f.bars == len(bars) and f.last_ts_ns == bars[-1].ts_ns


def test_a_pickled_state_continues_exactly(shared_data: Path) -> None:
    _df, bars = _bars(shared_data)
    whole = SymbolFeatures(P, _named())
    whole.warm(bars[:300])
    resumed = pickle.loads(pickle.dumps(whole))
    for b in bars[300:]:
        a, r = whole.update(b), resumed.update(b)
        assert a == r
    assert float(resumed.named["obv"].value) == float(whole.named["obv"].value)


def test_stale_bars_are_ignored_and_readers_follow_a_re_warm() -> None:
    f = SymbolFeatures(P)
    assert f.update(Bar("X", 10 * NS_PER_MIN, 1, 1, 1, 1, 1)) is not None
    assert f.update(Bar("X", 10 * NS_PER_MIN, 1, 1, 1, 1, 1)) is None  # duplicate
    assert f.update(Bar("X", 9 * NS_PER_MIN, 1, 1, 1, 1, 1)) is None  # late
    last = 100 * NS_PER_MIN
    assert SymbolFeatures.accepts(last, last + NS_PER_MIN)
    assert not SymbolFeatures.accepts(last, last) and not SymbolFeatures.accepts(last, last - NS_PER_MIN)
    assert SymbolFeatures.accepts(last, last - REWARM_GAP_NS - 1)  # the owner re-warmed from further back


def test_rolling_variance_matches_numpy_over_a_long_run() -> None:
    rng = np.random.default_rng(7)
    xs = rng.normal(1e-5, 1e-3, 5000)  # 1-minute log returns; re-summing keeps rounding from accumulating
    rv = RollingVariance(50)
    for i, x in enumerate(xs):
        rv.push(float(x))
        if i < 49:
            assert math.isnan(rv.value)
    assert rv.value == pytest.approx(xs[-50:].var(ddof=1), rel=1e-9)


def test_warming_from_columns_leaves_the_state_bar_by_bar_warming_leaves(shared_data: Path) -> None:
    """One ``update_many`` per stream (the start-up path) == one ``update`` per bar: every later
    snapshot and named value is identical (with a gap in the bars, so the realised volatility's
    in-session rule is exercised too)."""
    _df, bars = _bars(shared_data)
    bars = [b if i < 150 else replace(b, ts_ns=b.ts_ns + 30 * NS_PER_MIN) for i, b in enumerate(bars)]
    by_bar, by_cols = SymbolFeatures(P, _named()), SymbolFeatures(P, _named())
    by_bar.warm(bars[:10])
    by_cols.warm(bars[:10])
    head = bars[10:400]
    by_bar.warm(head)
    cols = [np.array([getattr(b, f) for b in head]) for f in ("ts_ns", "open", "high", "low", "close", "volume")]
    by_cols.warm_columns("AAPL", NS_PER_MIN, *cols)
    by_cols.warm_columns("AAPL", NS_PER_MIN, *cols)  # the same bars again: nothing newer, nothing changes
    assert (by_cols.bars, by_cols.last_ts_ns, by_cols.prev_bar) == (by_bar.bars, by_bar.last_ts_ns, by_bar.prev_bar)
    for b in bars[400:]:
        assert by_cols.update(b) == by_bar.update(b)
    for name in ("rsi", "obv"):
        assert float(by_cols.named[name].value) == float(by_bar.named[name].value)


def test_unordered_columns_fall_back_to_bar_by_bar() -> None:
    ts = np.array([3, 1, 2, 4]) * NS_PER_MIN
    px = np.array([10.0, 11.0, 12.0, 13.0])
    f = SymbolFeatures(P)
    f.warm_columns("X", NS_PER_MIN, ts, px, px, px, px, px)
    assert f.bars == 2 and f.last_ts_ns == 4 * NS_PER_MIN  # 1 and 2 came after 3: stale, as update() says


def test_with_iv_source_is_replace_without_touching_the_original() -> None:
    f = SymbolFeatures(P)
    snap = None
    for i in range(40):
        snap = f.update(Bar("X", i * NS_PER_MIN, 10 + i % 3, 11 + i % 5, 9, 10 + i % 4, 100 + i))
    assert snap is not None and snap.iv_source is None

    def source() -> float:
        return 0.25

    got, want = snap.with_iv_source(source), replace(snap, iv_source=source)
    assert type(got) is type(want) and got.__dict__ == want.__dict__ and got.iv_source is source
    assert got.traded_atm_iv() == 0.25 and snap.iv_source is None and math.isnan(snap.traded_atm_iv())
    with pytest.raises(AttributeError):  # still frozen
        got.atr = 1.0  # type: ignore[misc]
