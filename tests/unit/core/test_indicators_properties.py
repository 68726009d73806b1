"""Property tests for the batch functions and streaming classes (hypothesis): on any positive OHLCV
series - random walks, flat runs, repeated values, tiny and huge scales - every batch function
agrees with TA-Lib (the oracle) and every streaming class reproduces its batch function bit for bit.
These exercise the step functions both share (one definition per indicator) on shapes the fixed
data sets miss: short series around the lookback, ties at the window extremes, sign changes of the
+DM/-DM, money-flow and OBV selects, SAR reversals and the WILLR block boundaries."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiots.core import indicators as ind

from ._indicator_cases import CASES, STREAMS, Arrays, as_tuple, assert_parity

PRICE_STEPS = st.lists(
    st.one_of(
        st.floats(-0.05, 0.05, allow_nan=False, allow_infinity=False),
        st.just(0.0),  # flat bars: ties for the extremes, zero changes for RSI/MFI/OBV
    ),
    min_size=1,
    max_size=160,
)


@st.composite
def ohlcv(draw: Any) -> Arrays:
    """A positive OHLCV series with consistent high >= max(open, close), low <= min(open, close)."""
    steps = np.array(draw(PRICE_STEPS))
    scale = draw(st.sampled_from([1e-4, 1.0, 100.0, 1e6]))
    c = scale * np.exp(np.cumsum(steps))
    n = c.size
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    o = c * np.exp(rng.normal(0.0, 0.01, n))
    wick = draw(st.sampled_from([0.0, 0.005]))  # 0: high == low == close on flat bars
    h = np.maximum(o, c) * np.exp(np.abs(rng.normal(0.0, wick, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0.0, wick, n)))
    v = np.round(rng.lognormal(5.0, 2.0, n)) * draw(st.sampled_from([1.0, 1.0, 0.0]))  # 0: empty MFI windows
    return h, lo, c, v


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=ohlcv(), name=st.sampled_from(sorted(CASES)))
def test_batch_matches_talib_on_any_series(bars: Arrays, name: str) -> None:
    ours, oracle = CASES[name]
    assert_parity(ours(*bars), oracle(*bars), name)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=ohlcv(), name=st.sampled_from(sorted(STREAMS)), split=st.integers(0, 200))
def test_stream_equals_batch_bit_for_bit_on_any_series(bars: Arrays, name: str, split: int) -> None:
    """Fed bar by bar (update), in two blocks (update_many) or through handle_bar, the class gives the
    batch values exactly."""
    args, feed, batch = STREAMS[name]
    want = as_tuple(batch(*bars))
    obj = getattr(ind, name)(*args)
    cut = min(split, bars[0].size)
    first = as_tuple(feed(obj, tuple(a[:cut] for a in bars)))
    rest = as_tuple(feed(obj, tuple(a[cut:] for a in bars)))
    for k, w in enumerate(want):
        np.testing.assert_array_equal(np.concatenate([first[k], rest[k]]), w, err_msg=name)
    twin = getattr(ind, name)(*args)
    twin.update_many(*_inputs_of(name, bars))
    assert twin.ready == obj.ready
    np.testing.assert_array_equal(np.asarray(twin.value, dtype=float), np.asarray(obj.value, dtype=float))


def _inputs_of(name: str, bars: Arrays) -> tuple[np.ndarray, ...]:
    h, lo, c, v = bars
    spec = next(s for s in ind.INDICATORS.values() if s.stream is getattr(ind, name))
    cols = {"high": h, "low": lo, "close": c, "volume": v}
    return tuple(cols[f] for f in spec.inputs)


@settings(max_examples=40, deadline=None)
@given(bars=ohlcv(), period=st.integers(2, 40))
def test_willr_blocks_any_period(bars: Arrays, period: int) -> None:
    """WILLR's block algorithm at every period and every series length around the block size."""
    import talib

    h, lo, c, _ = bars
    assert_parity(ind.willr(h, lo, c, period=period), talib.WILLR(h, lo, c, period), f"willr {period}")
    stream = ind.WillR(period)
    np.testing.assert_array_equal(stream.update_many(h, lo, c), ind.willr(h, lo, c, period=period))


@settings(max_examples=40, deadline=None)
@given(bars=ohlcv(), period=st.integers(1, 40))
def test_dmi_kama_mfi_any_period(bars: Arrays, period: int) -> None:
    """The select-based DMI, MFI and the FMA KAMA step at every period vs TA-Lib."""
    import talib

    h, lo, c, v = bars
    assert_parity(ind.kama(c, period=period), talib.KAMA(c, period), f"kama {period}")
    assert_parity(ind.plus_di(h, lo, c, period=period), talib.PLUS_DI(h, lo, c, period), f"+di {period}")
    assert_parity(ind.minus_di(h, lo, c, period=period), talib.MINUS_DI(h, lo, c, period), f"-di {period}")
    if period >= 2:
        assert_parity(ind.adx(h, lo, c, period=period), talib.ADX(h, lo, c, period), f"adx {period}")
        assert_parity(ind.mfi(h, lo, c, v, period=period), talib.MFI(h, lo, c, v, period), f"mfi {period}")


def test_kama_batch_loop_equals_step_at_every_length() -> None:
    """The batch KAMA loop (4-bar vector groups, sums a 128-bar block ahead of the blends, a 0-3 bar
    scalar tail) gives the streaming class's one-bar step bit for bit at every length through four
    blocks, at short and long periods, across flat runs (a zero efficiency-ratio sum: the select),
    and stays within parity of TA-Lib."""
    import talib

    rng = np.random.default_rng(20)
    steps = rng.normal(0.0, 0.01, 600)
    steps[100:160] = 0.0  # flat run longer than the longest period: the sum reaches exactly 0
    steps[300:305] = 0.0
    c = 100.0 * np.exp(np.cumsum(steps))
    for period in (2, 3, 4, 5, 30, 70):
        for n in range(1, c.size + 1):
            x = c[:n]
            got = ind.kama(x, period=period)
            np.testing.assert_array_equal(got, ind.KAMA(period).update_many(x), err_msg=f"p={period} n={n}")
        assert_parity(got, talib.KAMA(c, period), f"kama {period}")


def _walk_hlc(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, n)
    steps[n // 4 : n // 4 + 40] = 0.0  # a flat run: ties for both extremes, a zero range
    c = 100.0 * np.exp(np.cumsum(steps))
    spread = np.abs(rng.normal(0.0, 0.005, n)) * (steps != 0.0)
    return c * (1.0 + spread), c * (1.0 - spread), c


def test_stoch_direct_extremes_equal_deques_at_every_window() -> None:
    """STOCH's batch %K takes the window extremes directly (selects in vector lanes, blocks of 256
    bars, windows up to 16 bars; TA-Lib's tracking above): bit for bit what the streaming class's
    monotonic deques give, at every window 1..20 and lengths across the blocks, and TA-Lib within
    parity; the same for STOCHRSI, whose %K runs over the RSI."""
    import talib

    h, lo, c = _walk_hlc(700, 21)
    for fk in range(1, 21):
        for n in (1, fk, fk + 3, 255 + fk, 257 + fk, 700):
            args = (h[:n], lo[:n], c[:n])
            got = ind.stoch(*args, fastk=fk, slowk=3, slowd=2)
            want = ind.Stoch(fk, 3, 2).update_many(*args)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w, err_msg=f"stoch fk={fk} n={n}")
        assert_parity(got, talib.STOCH(h, lo, c, fk, 3, 0, 2, 0), f"stoch {fk}")
        srsi = ind.stochrsi(c, period=14, fastk=fk, fastd=3)
        stream = ind.StochRSI(14, fk, 3).update_many(c)
        for g, w in zip(srsi, stream, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=f"stochrsi fk={fk}")
        assert_parity(srsi, talib.STOCHRSI(c, 14, fk, 3, 0), f"stochrsi {fk}")


def test_stoch_nan_or_zero_extremes_follow_talibs_tracking() -> None:
    """Where a high or low is NaN or zero the window's max/min depends on TA-Lib's path (which NaN
    sticks, which zero wins), so STOCH falls back to TA-Lib's tracking: same NaN positions and
    values as TA-Lib wherever the bad value sits (first window, later blocks) - a NaN the direct
    extremes took in would poison the %K smoothing from there on."""
    import talib

    h0, lo0, c = _walk_hlc(900, 22)
    cases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label, where, col in (("nan high", 500, 0), ("nan low", 2, 1), ("nan low late", 880, 1)):
        pair = [h0.copy(), lo0.copy()]
        pair[col][where] = np.nan
        cases[label] = (pair[0], pair[1])
    zero = lo0.copy()
    zero[300:303] = 0.0
    zero[600] = -0.0
    cases["zero low"] = (h0, zero)
    for label, (h, lo) in cases.items():
        for fk in (1, 5, 14, 16, 17):
            assert_parity(ind.stoch(h, lo, c, fastk=fk), talib.STOCH(h, lo, c, fk, 3, 0, 3, 0), f"{label} {fk}")
    # RSI exactly 0 through a steady decline: zeros inside STOCHRSI's %K windows
    x = np.concatenate([np.linspace(100.0, 80.0, 40), c[:300]])
    for fk in (5, 14):
        assert_parity(ind.stochrsi(x, fastk=fk), talib.STOCHRSI(x, 14, fk, 3, 0), f"stochrsi zero rsi {fk}")


def test_cci_lanes_equal_ring_at_every_length() -> None:
    """CCI's batch kernel (4 bars in vector lanes, each lane's ring rebuilt by a select on the lane
    number, from period 4; the last 0-3 bars one at a time) gives the CCI class's ring sums bit for
    bit at every length up to 80 and at periods 2..20 and 50 (slot-order sums, ring wrap at every
    offset), across a flat run (zero mean deviation: the select to 0), and TA-Lib within parity."""
    import talib

    h, lo, c = _walk_hlc(400, 23)
    for period in (*range(2, 21), 50):
        for n in (*range(1, 81), 400):
            args = (h[:n], lo[:n], c[:n])
            got = ind.cci(*args, period=period)
            np.testing.assert_array_equal(got, ind.CCI(period).update_many(*args), err_msg=f"p={period} n={n}")
        assert_parity(got, talib.CCI(h, lo, c, period), f"cci {period}")


def test_aroon_lanes_equal_tracking_at_every_length() -> None:
    """Aroon's batch kernel (4 bars in vector lanes, each scanning its window from the oldest bar,
    periods up to 32; TA-Lib's tracking for the last 0-3 bars, longer periods and any NaN) gives the
    Aroon class's deque ages bit for bit at every length to 60 and periods 2..40, with ties (a
    flat run: the latest extreme wins) and TA-Lib within parity; a NaN high or low follows TA-Lib."""
    import talib

    h, lo, _c = _walk_hlc(300, 24)
    for period in range(2, 41):
        for n in (*range(1, 61), 300):
            got = ind.aroon(h[:n], lo[:n], period=period)
            want = ind.Aroon(period).update_many(h[:n], lo[:n])
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w, err_msg=f"p={period} n={n}")
        assert_parity(got, talib.AROON(h, lo, period), f"aroon {period}")
    hn, ln = h.copy(), lo.copy()
    hn[150] = np.nan
    ln[40] = np.nan
    for period in (5, 14, 33):
        assert_parity(ind.aroon(hn, ln, period=period), talib.AROON(hn, ln, period), f"aroon nan {period}")
