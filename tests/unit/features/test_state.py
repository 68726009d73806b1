"""The one streaming feature state: every value equals TA-Lib's batch function over the same bars,
also across a pickle (the checkpoint) and for the named live indicators it carries.

Oracle: TA-Lib on the real AAPL bars of the data fixture; numpy for the rolling windows."""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections import deque
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import indicators as ind
from aiots.core.conventions import NS_PER_MIN
from aiots.services.features import state
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import (
    REWARM_GAP_NS,
    Bar,
    RollingExtreme,
    RollingVariance,
    Snapshot,
    SymbolFeatures,
    new_bar,
    new_snapshot,
)

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


# --- the columns fast path (SymbolFeatures.stream) against the generic update() ----------------
def _same_snapshot(a: Snapshot | None, b: Snapshot | None) -> bool:
    """Field by field (NaN equal to NaN), ``ready`` included, with the same bars."""
    if a is None or b is None:
        return a is b
    for f in dataclasses.fields(Snapshot):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))):
            return False
    return a.ready == b.ready


@st.composite
def _bar_runs(draw: st.DrawFn) -> list[Bar]:
    """Bars a feed may send: mostly one a minute, with gaps (a new session), repeats and late bars,
    flat and jumpy prices, a NaN high now and then."""
    n = draw(st.integers(1, 160))
    t, px = 1_000 * NS_PER_MIN, 100.0
    bars = []
    for _ in range(n):
        step = draw(st.sampled_from([1, 1, 1, 1, 2, 3, 90, 0, -2]))
        t += step * NS_PER_MIN
        px = max(0.5, px * (1 + draw(st.sampled_from([0.0, 0.001, -0.001, 0.02, -0.02, 0.0004]))))
        hi = px * (1 + draw(st.sampled_from([0.0, 0.001, 0.003])))
        if draw(st.integers(0, 40)) == 0:
            hi = math.nan
        lo = px * (1 - draw(st.sampled_from([0.0, 0.001, 0.003])))
        bars.append(Bar("X", t, px, hi, lo, px, draw(st.sampled_from([0.0, 100.0, 2500.0, 1e6]))))
    return bars


@settings(max_examples=150, deadline=None)
@given(bars=_bar_runs(), chunk=st.integers(1, 40), warm=st.integers(0, 30))
def test_stream_equals_update_bar_by_bar(bars: list[Bar], chunk: int, warm: int) -> None:
    """Every snapshot :meth:`stream` yields, and the state it leaves (pickled byte for byte, then
    what later update() calls return), is what one update() per bar gives; chunks of any size."""
    params = FeatureParams(lookback=7, rv_bars=5, ema_fast=3, ema_slow=6, bb_period=4, volume_period=3)
    by_bar, by_cols = SymbolFeatures(params, _named()), SymbolFeatures(params, _named())
    head, body = bars[: min(warm, len(bars))], bars[min(warm, len(bars)) :]
    by_bar.warm(head)
    by_cols.warm(head)
    want = [by_bar.update(b) for b in body]
    with patch.object(state, "STREAM_CHUNK", chunk):
        makes = list(by_cols.stream(body))
    got = [None if make is None else make() for make in makes]  # made after the fact: each keeps its bar's values
    assert len(got) == len(want) and all(_same_snapshot(g, w) for g, w in zip(got, want, strict=True))
    assert pickle.dumps(by_cols) == pickle.dumps(by_bar)
    later = Bar("X", bars[-1].ts_ns + NS_PER_MIN, 101.0, 102.0, 100.0, 101.5, 300.0)
    assert _same_snapshot(by_cols.update(later), by_bar.update(later))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 9),
    is_max=st.booleans(),
    before=st.lists(st.sampled_from([1.0, 2.0, 3.0, 2.5, -1.0, math.inf]), max_size=20),
    xs=st.lists(st.sampled_from([1.0, 2.0, 3.0, 2.5, -1.0, 0.0, -math.inf]), max_size=30),
)
def test_rolling_extreme_in_columns_equals_push_by_push(
    n: int, is_max: bool, before: list[float], xs: list[float]
) -> None:
    """previous_many == previous() before each push (ties and infinities included), same deque after."""
    one, cols = RollingExtreme(n, is_max), RollingExtreme(n, is_max)
    for x in before:
        one.push(x)
        cols.push(x)
    want = []
    for x in xs:
        want.append(one.previous())
        one.push(x)
    got = cols.previous_many(np.array(xs, dtype=np.float64))
    assert [("nan" if math.isnan(v) else v) for v in got] == [("nan" if math.isnan(v) else v) for v in want]
    assert (cols._i, list(cols._dq)) == (one._i, list(one._dq))


@given(
    ts=st.integers(0, 2**62),
    px=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=5, max_size=5),
    iv=st.integers(1, 10**12),
)
def test_new_bar_is_the_dataclass_constructor(ts: int, px: list[float], iv: int) -> None:
    want = Bar("SYM", ts, *px, interval_ns=iv)
    got = new_bar("SYM", ts, *px, iv)
    assert type(got) is Bar and list(got.__dict__.items()) == list(want.__dict__.items())
    assert pickle.dumps(got) == pickle.dumps(want)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.close = 1.0  # type: ignore[misc]


@given(vals=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=16, max_size=16), prev=st.booleans())
def test_new_snapshot_is_the_dataclass_constructor(vals: list[float], prev: bool) -> None:
    bar = Bar("SYM", 60, 1.0, 2.0, 0.5, 1.5, 10.0)
    before = Bar("SYM", 0, 1.0, 2.0, 0.5, 1.5, 10.0) if prev else None
    want = Snapshot(bar, before, *vals)
    got = new_snapshot(bar, before, *vals)
    assert type(got) is Snapshot and list(got.__dict__.items()) == list(want.__dict__.items())
    # ready: the definition (a previous bar and the seven indicators finite), on the fast path too
    finite = all(math.isfinite(v) for v in (vals[0], vals[1], vals[3], vals[6], vals[8], vals[10], vals[12]))
    assert got.ready is want.ready is (before is not None and finite)
    assert got.__dict__["ready"] is got.ready  # computed once, kept


class _OneByOne:
    """The rolling variance as a push per value and a read per bar (the path ``push_many`` replaces):
    a ring of the last ``n`` values, running sums re-summed every ``n`` pushes."""

    def __init__(self, n: int) -> None:
        self.n, self.buf, self.s, self.s2, self.since = n, deque[float](), 0.0, 0.0, 0

    def push(self, x: float) -> None:
        self.buf.append(x)
        self.s += x
        self.s2 += x * x
        if len(self.buf) > self.n:
            old = self.buf.popleft()
            self.s -= old
            self.s2 -= old * old
        self.since += 1
        if self.since >= self.n:
            self.since = 0
            self.s = sum(self.buf)
            self.s2 = sum(v * v for v in self.buf)

    def value(self) -> float:
        k = len(self.buf)
        return math.nan if k < self.n or k < 2 else max(0.0, (self.s2 - self.s * self.s / k) / (k - 1))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 8),
    chunks=st.lists(
        st.lists(st.one_of(st.none(), st.floats(-0.05, 0.05), st.sampled_from([0.0, 1e-3, -1e-3]))), max_size=6
    ),
)
def test_rolling_variance_in_chunks_equals_a_push_and_a_read_per_value(
    n: int, chunks: list[list[float | None]]
) -> None:
    """push_many == push per value (None: none) and value after each, bit for bit, across chunks
    (the re-summing every n pushes included); push == push_many of one value."""
    got, one, ref = RollingVariance(n), RollingVariance(n), _OneByOne(n)
    for xs in chunks:
        want = []
        for x in xs:
            if x is not None:
                ref.push(x)
                one.push(x)
            want.append(ref.value())
        assert [repr(v) for v in got.push_many(xs)] == [repr(v) for v in want]
        assert repr(got.value) == repr(one.value) == repr(ref.value())
    assert (list(got._buf), got._s, got._s2, got._since) == (list(ref.buf), ref.s, ref.s2, ref.since)
