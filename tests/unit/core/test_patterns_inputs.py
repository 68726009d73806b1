"""Bad and odd input to aiots.core.patterns: conversions, clear ValueErrors, never a crash."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import patterns as P

from ._pattern_bars import random_bars

talib = pytest.importorskip("talib")

NAMES = sorted(P.CANDLESTICK_PATTERNS)


def test_lists_and_other_dtypes_are_converted() -> None:
    o, h, lo, c = random_bars(300, seed=2)
    for name in NAMES:
        fn = P.CANDLESTICK_PATTERNS[name]
        ref = fn(o, h, lo, c)
        assert np.array_equal(fn(o.tolist(), h.tolist(), lo.tolist(), c.tolist()), ref)
        as32 = [a.astype(np.float32) for a in (o, h, lo, c)]
        expected = getattr(talib, P.TALIB_NAMES[name])(*[a.astype(np.float64) for a in as32])
        assert np.array_equal(fn(*as32), expected)
        # Non-contiguous views are copied once, results unchanged.
        big = [np.repeat(a, 2)[::2] for a in (o, h, lo, c)]
        assert np.array_equal(fn(*big), ref)
    ints = [np.arange(50, dtype=np.int64) + k for k in (0, 1, -1, 0)]
    assert P.cdl_doji(*ints).shape == (50,)


@pytest.mark.parametrize("which", ["high", "low", "close"])
def test_mismatched_lengths_name_the_argument(which: str) -> None:
    arrays = dict(zip(("open", "high", "low", "close"), random_bars(30, seed=4), strict=True))
    arrays[which] = arrays[which][:-1]
    with pytest.raises(ValueError, match=f"{which} has length 29 but open has length 30"):
        P.cdl_engulfing(**arrays)
    with pytest.raises(ValueError, match=which):
        P.scan_candlesticks(**arrays)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x", None])
@pytest.mark.parametrize("name", ["morning_star", "evening_star", "dark_cloud_cover"])
def test_bad_penetration(name: str, bad: Any) -> None:
    o, h, lo, c = random_bars(30, seed=5)
    with pytest.raises(ValueError, match="penetration"):
        P.CANDLESTICK_PATTERNS[name](o, h, lo, c, penetration=bad)


@pytest.mark.parametrize("bad", [[["a", "b"]], "abc", 3.0, [[1.0, 2.0], [3.0, 4.0]], [10**400], object()])
def test_non_numeric_or_wrong_shape_names_the_argument(bad: Any) -> None:
    ok = np.ones(2)
    with pytest.raises(ValueError, match="close"):
        P.cdl_doji(ok, ok, ok, bad)


def test_empty_and_short_give_zeros_of_that_length() -> None:
    for n in range(0, 14):
        x = np.linspace(1.0, 2.0, n)
        for name, arr in P.scan_candlesticks(x, x + 0.1, x - 0.1, x).items():
            assert arr.shape == (n,) and arr.dtype == np.int32, name
    assert P.scan_candlesticks([], [], [], [])["doji"].shape == (0,)


def test_swing_pivots_bad_parameters() -> None:
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="left must be >= 1; got 0"):
        P.swing_pivots(x, x, left=0)
    with pytest.raises(ValueError, match="right must be >= 0; got -2"):
        P.swing_pivots(x, x, right=-2)
    with pytest.raises(ValueError, match="low has length 19"):
        P.swing_pivots(x, x[:-1])


def test_swing_pivots_hand_built() -> None:
    high = np.array([1, 2, 3, 2, 1, 2, 5, 5, 4, 3, 2, 3, 4], dtype=float)
    low = high - 0.5
    hi, lo = P.swing_pivots(high, low, left=2, right=2)
    assert hi.tolist() == [2, 6]  # flat top at 6,7 reports the first bar only
    assert lo.tolist() == [4, 10]
    nan_high = high.copy()
    nan_high[5] = np.nan
    hi2, _ = P.swing_pivots(nan_high, low, left=2, right=2)
    assert 6 not in hi2.tolist()  # a NaN in the window disqualifies the bar


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.01, max_value=1e6),
    st.sampled_from([0.0, -0.0, 1.0, 100.0, 1e-300, -1e300]),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(floats, floats, floats, floats), max_size=40),
    penetration=st.floats(allow_nan=True, allow_infinity=True),
)
def test_property_never_crashes_and_matches_talib(
    data: list[tuple[float, float, float, float]], penetration: float
) -> None:
    cols = [np.array([row[k] for row in data], dtype=np.float64) for k in range(4)]
    for name in NAMES:
        out = P.CANDLESTICK_PATTERNS[name](*cols)
        assert out.shape == (len(data),) and out.dtype == np.int32
        assert np.array_equal(out, getattr(talib, P.TALIB_NAMES[name])(*cols)), name
    assert set(P.scan_candlesticks(*cols)) == set(NAMES)
    for name in ("morning_star", "evening_star", "dark_cloud_cover"):
        try:
            P.CANDLESTICK_PATTERNS[name](*cols, penetration=penetration)
        except ValueError as exc:
            assert "penetration" in str(exc)
    for left in (1, 3):
        hi, lo = P.swing_pivots(cols[1], cols[2], left=left, right=2)
        assert hi.dtype == np.int64 and np.all((hi >= 0) & (hi < max(len(data), 1)))
        assert np.all((lo >= 0) & (lo < max(len(data), 1)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=3)), max_size=8))
def test_property_arbitrary_element_types(values: list[Any]) -> None:
    """Anything that is not a numeric vector is a ValueError, never another exception."""
    ok = np.ones(len(values))
    with contextlib.suppress(ValueError):
        P.cdl_hammer(values, ok, ok, ok)
