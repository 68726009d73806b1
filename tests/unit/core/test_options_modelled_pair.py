"""``opt.modelled_atm_pair`` (the backtest's modelled ATM call/put quotes and their IVs in one core
call) gives bit for bit what its definition gives from the public API taking its general paths:
``american_price`` of the call and put (strided arrays), the modelled spread rounded to the tick by
``modelled_quote_prices`` (numpy), and ``implied_vol`` of each mid (strided arrays) when both sides
are two-sided. Inputs range over deep in/out of the money, expiry-day to two-year contracts, rates
and yields of either sign, and spreads wide enough to leave a side unquoted."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.services.backtest.modelled import PRICE_SCALE, TICK_EPS, ModelSettings, modelled_quote_prices


def strided(xs: list[float]) -> np.ndarray:
    """``xs`` as a non-contiguous view: the API's general (broadcasting) path, not its fast path."""
    return np.repeat(np.array(xs, dtype=np.float64), 2)[::2]


def definition(
    S: float,
    K: float,
    t: float,
    r: float,
    v: float,
    q: float,
    s: ModelSettings,
    S_iv: float,
    T: float,
    r_iv: float,
    q_iv: float,
) -> tuple[float, ...] | None:
    flags = np.repeat(np.array([True, False]), 2)[::2]
    px = np.asarray(opt.american_price(strided([S] * 2), strided([K, K]), strided([t] * 2), r, v, q, flags), float)
    if not np.isfinite(px).all():
        return None
    bid, ask = modelled_quote_prices(px, s)
    bc, bp = bid.tolist()
    ac, ap = ask.tolist()
    ivc = ivp = math.nan
    if bc > 0.0 and ac >= bc and bp > 0.0 and ap >= bp:
        mids = strided([0.5 * (bc + ac), 0.5 * (bp + ap)])
        ivc, ivp = np.asarray(opt.implied_vol(mids, S_iv, K, T, r_iv, q_iv, flags), float).tolist()
    return bc, ac, bp, ap, ivc, ivp


def same(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


@settings(max_examples=3000, deadline=None)
@given(
    S=st.floats(0.5, 6000.0),
    moneyness=st.floats(0.5, 1.6),
    t=st.sampled_from([1e-9, 1.0 / 365.0 / 24.0, 1.0 / 365.0]) | st.floats(1e-6, 2.0),
    r=st.floats(-0.02, 0.1),
    v=st.floats(0.01, 2.0),
    q=st.sampled_from([0.0]) | st.floats(-0.02, 0.08),
    frac=st.sampled_from([0.0125, 0.0, 0.3]),
    min_half=st.sampled_from([0.01, 0.0, 0.5]),
    tick=st.sampled_from([0.01, 0.05, 0.005]),
    T_shift=st.floats(-1e-3, 1e-3),
)
def test_modelled_atm_pair_is_its_definition_bit_for_bit(
    S: float,
    moneyness: float,
    t: float,
    r: float,
    v: float,
    q: float,
    frac: float,
    min_half: float,
    tick: float,
    T_shift: float,
) -> None:
    K = round(S * moneyness, 2)
    s = ModelSettings(half_spread_frac=frac, min_half_spread=min_half, tick=tick)
    T = max(t + T_shift, 1e-9)  # the IV's years need not be the pricing's
    got = opt.modelled_atm_pair(S, K, t, r, v, q, frac, min_half, tick, TICK_EPS, PRICE_SCALE, S, T, r, q)
    assert same(got, definition(S, K, t, r, v, q, s, S, T, r, q))


def test_a_price_that_is_not_finite_gives_none() -> None:
    s = ModelSettings()
    args = (s.half_spread_frac, s.min_half_spread, s.tick, TICK_EPS, PRICE_SCALE, 500.0, 0.02, 0.05, 0.0)
    assert opt.modelled_atm_pair(500.0, 500.0, math.nan, 0.05, 0.2, 0.0, *args) is None
    assert opt.modelled_atm_pair(500.0, 500.0, 0.02, 0.05, math.inf, 0.0, *args) is None


def test_an_unquoted_side_gives_nan_ivs_and_the_quotes() -> None:
    # a far out-of-the-money pair with a whole-dollar minimum half-spread: no bid on the call
    s = ModelSettings(min_half_spread=1.0)
    got = opt.modelled_atm_pair(
        100.0,
        150.0,
        0.02,
        0.05,
        0.2,
        0.0,
        s.half_spread_frac,
        1.0,
        s.tick,
        TICK_EPS,
        PRICE_SCALE,
        100.0,
        0.02,
        0.05,
        0.0,
    )
    assert got is not None
    assert got[0] == 0.0 and math.isnan(got[4]) and math.isnan(got[5])
    assert same(got, definition(100.0, 150.0, 0.02, 0.05, 0.2, 0.0, s, 100.0, 0.02, 0.05, 0.0))
