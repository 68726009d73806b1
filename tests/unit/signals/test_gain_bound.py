"""The gain bound that lets selection skip American IV solves, against the core's own solver and
Greeks: the American IV lies in the bracket, and the projected gain at any IV in the bracket (and at
the solved one) is at most the bound for every contract inside the delta band."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.core.conventions import SESSIONS_PER_YEAR
from aiots.services.signals.gain_bound import (
    DELTA_RANGE_SLACK,
    bracket_gain_and_delta_bounds,
    gain_and_delta_bounds,
    gain_upper_bound,
    iv_bracket,
)

DELTA_MAX = 0.65


def _dv(S: float, K: float, T: float, r: float, q: float, call: bool, sigma: float, dS: float, days: float) -> float:
    """The projected gain exactly as selection's ``_levels`` computes it (trader-unit Greeks)."""
    g = opt.trader_units(opt.bs_greeks(S, np.array([K]), np.array([T]), r, np.array([sigma]), q, call))
    delta, gamma, theta = float(g["delta"][0]), float(g["gamma"][0]), float(g["theta"][0])
    if abs(delta) > DELTA_MAX:
        return -math.inf  # outside the band: the bound need not hold
    return float(delta * dS + 0.5 * gamma * dS * dS + theta * 365.0 / SESSIONS_PER_YEAR * days)


@given(
    S=st.floats(20.0, 2000.0),
    moneyness=st.floats(-0.25, 0.25),
    days_to_expiry=st.floats(1.0, 60.0),
    sigma=st.floats(0.05, 1.5),
    r=st.floats(-0.01, 0.08),
    q=st.floats(-0.01, 0.05),
    call=st.booleans(),
    move=st.floats(-0.02, 0.02),
    minutes=st.floats(1.0, 390.0),
    frac=st.floats(0.0, 1.0),
)
@settings(max_examples=600, deadline=None)
def test_the_bound_holds_over_the_bracket_of_the_american_iv(
    S: float,
    moneyness: float,
    days_to_expiry: float,
    sigma: float,
    r: float,
    q: float,
    call: bool,
    move: float,
    minutes: float,
    frac: float,
) -> None:
    K = round(S * math.exp(moneyness), 2)
    T = days_to_expiry / 365.0
    mid = float(opt.american_price(S, K, T, r, sigma, q, call))
    iv_eu = np.asarray(opt.implied_vol(np.array([mid]), S, np.array([K]), np.array([T]), r, q, call), float)
    lo, hi = iv_bracket(np.array([mid]), iv_eu, S, np.array([K]), np.array([T]), r, q, call, american=True)
    iv_am = float(opt.implied_vol(mid, S, K, T, r, q, call, style="american"))
    dS, days = move * S, minutes / 390.0
    bound = float(gain_upper_bound(S, np.array([K]), np.array([T]), r, q, call, lo, hi, dS, days, DELTA_MAX)[0])
    if not (math.isfinite(iv_am) and iv_am > 0 and math.isfinite(bound)):
        return  # nothing solved (selection drops it) or no bound (selection solves it)
    assert lo[0] <= iv_am <= hi[0]
    for s in (iv_am, float(lo[0]), float(hi[0]), float(lo[0] + frac * (hi[0] - lo[0]))):
        assert _dv(S, K, T, r, q, call, s, dS, days) <= bound


@given(
    S=st.floats(20.0, 2000.0),
    moneyness=st.floats(-0.3, 0.3),
    days_to_expiry=st.floats(1.0, 60.0),
    sigma=st.floats(0.05, 1.5),
    r=st.floats(-0.01, 0.08),
    q=st.floats(-0.01, 0.05),
    call=st.booleans(),
    frac=st.floats(0.0, 1.0),
)
@settings(max_examples=600, deadline=None)
def test_the_delta_range_holds_the_core_delta_at_the_american_iv(
    S: float, moneyness: float, days_to_expiry: float, sigma: float, r: float, q: float, call: bool, frac: float
) -> None:
    """The delta range is sound: the core's delta at the solved American IV (and anywhere in the
    bracket) lies in it, to :data:`DELTA_RANGE_SLACK`. (Selection does not skip solves with it: see
    ``ContractSelector._solve_ivs``.)"""
    K = round(S * math.exp(moneyness), 2)
    T = days_to_expiry / 365.0
    mid = float(opt.american_price(S, K, T, r, sigma, q, call))
    k, t = np.array([K]), np.array([T])
    iv_eu = np.asarray(opt.implied_vol(np.array([mid]), S, k, t, r, q, call), float)
    lo, hi = iv_bracket(np.array([mid]), iv_eu, S, k, t, r, q, call, american=True)
    _b, dlo, dhi = gain_and_delta_bounds(S, k, t, r, q, call, lo, hi, 0.01 * S, 0.2, DELTA_MAX)
    iv_am = float(opt.implied_vol(mid, S, K, T, r, q, call, style="american"))
    if not (math.isfinite(iv_am) and iv_am > 0 and math.isfinite(dlo[0]) and math.isfinite(dhi[0])):
        return  # nothing solved, or no range (selection solves it)
    for s in (iv_am, float(lo[0]), float(hi[0]), float(lo[0] + frac * (hi[0] - lo[0]))):
        delta = float(opt.bs_greeks(S, k, t, r, np.array([s]), q, call)["delta"][0])
        assert dlo[0] - DELTA_RANGE_SLACK <= delta <= dhi[0] + DELTA_RANGE_SLACK


@given(d_lo=st.floats(-3.0, 3.0), width=st.floats(0.0, 1.0), T=st.floats(0.003, 0.2), call=st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_bound_is_tight_on_a_point_bracket(d_lo: float, width: float, T: float, call: bool) -> None:
    # a degenerate bracket: the bound is the gain itself plus its small rounding margin
    S, K, r, q, dS, days = 100.0, 100.0 * math.exp(-d_lo * 0.1), 0.04, 0.01, 0.5, 0.2
    sig = 0.1 + width
    bound = float(
        gain_upper_bound(S, np.array([K]), np.array([T]), r, q, call, np.array([sig]), np.array([sig]), dS, days, 1.0)[
            0
        ]
    )
    g = opt.trader_units(opt.bs_greeks(S, K, T, r, sig, q, call))
    dv = (
        float(g["delta"]) * dS
        + 0.5 * float(g["gamma"]) * dS * dS
        + float(g["theta"]) * 365.0 / SESSIONS_PER_YEAR * days
    )
    assert dv <= bound <= dv + 1e-6 * (1.0 + abs(dv))


def test_negative_carry_gives_no_lower_end() -> None:
    # with r < 0 an American call (q < 0: a put) may be exercised early with no dividend (interest)
    # to bound the premium: the bracket has no lower end, so nothing is pruned
    one = np.array([1.0])
    for r, q, call in ((-0.01, 0.0, True), (0.04, -0.01, False)):
        lo, hi = iv_bracket(one * 2.0, one * 0.3, 100.0, one * 100.0, one * 0.1, r, q, call, american=True)
        assert np.isnan(lo).all() and hi[0] > 0.3


def test_no_bracket_never_prunes() -> None:
    nan = np.array([math.nan])
    b = gain_upper_bound(100.0, np.array([100.0]), np.array([0.05]), 0.04, 0.0, True, nan, nan, 0.5, 0.2, 0.65)
    assert np.isnan(b).all()
    assert not (b <= 1e9).any()
    _b, dlo, dhi = gain_and_delta_bounds(
        100.0, np.array([100.0]), np.array([0.05]), 0.04, 0.0, True, nan, nan, 0.5, 0.2, 0.65
    )
    assert np.isnan(dlo).all() and np.isnan(dhi).all()  # no range: no contract is skipped for its delta


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 40),
    S=st.floats(20.0, 2000.0),
    r=st.sampled_from([-0.01, 0.0, 0.045]),
    q=st.sampled_from([-0.01, 0.0, 0.015]),
    call=st.booleans(),
    move=st.floats(-0.02, 0.02),
    minutes=st.floats(1.0, 390.0),
)
@settings(max_examples=300, deadline=None)
def test_the_fused_bracket_and_bounds_are_the_two_steps_bit_for_bit(
    seed: int, n: int, S: float, r: float, q: float, call: bool, move: float, minutes: float
) -> None:
    """Selection's one-pass :func:`bracket_gain_and_delta_bounds` against :func:`iv_bracket` then
    :func:`gain_and_delta_bounds` (the functions the soundness tests above hold), on rows of mixed
    moneyness, expiry and IV (some deep in the money, some without a European IV)."""
    rng = np.random.default_rng(seed)
    K = np.round(S * np.exp(rng.uniform(-0.4, 0.4, n)), 2)
    T = rng.uniform(0.5, 60.0, n) / 365.0
    sig = rng.uniform(0.05, 1.2, n)
    mid = np.asarray(opt.american_price(S, K, T, r, sig, q, call), float) * rng.choice([1.0, 1.0, 0.97, 1.03], n)
    iv_eu = np.asarray(opt.implied_vol(mid, S, K, T, r, q, call), float)
    dS, days = move * S, minutes / 390.0
    lo, hi = iv_bracket(mid, iv_eu, S, K, T, r, q, call, american=True)
    want = gain_and_delta_bounds(S, K, T, r, q, call, lo, hi, dS, days, DELTA_MAX)
    got = bracket_gain_and_delta_bounds(mid, iv_eu, S, K, T, r, q, call, dS, days, DELTA_MAX)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w, equal_nan=True)
