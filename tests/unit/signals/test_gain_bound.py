"""The gain bound that lets selection skip American IV solves, against the core's own solver and
Greeks: the American IV lies in the bracket, and the projected gain at any IV in the bracket (and at
the solved one) is at most the bound for every contract inside the delta band, on random contracts
and on a real chain. Second check: the compiled kernel against the NumPy formulas it replaced
(kept here verbatim), element by element to rounding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from aiots.core import options as opt
from aiots.core.conventions import SESSIONS_PER_YEAR
from aiots.services.signals.gain_bound import (
    ABS_SLACK,
    BOUND_SLACK,
    D_SLACK,
    DELTA_RANGE_SLACK,
    MAX_CONDITION,
    PRICE_SLACK,
    SIGMA_SLACK,
    bracket_gain_and_delta_bounds,
    gain_and_delta_bounds,
    gain_upper_bound,
    iv_bracket,
)

F64 = npt.NDArray[np.float64]
DELTA_MAX = 0.65
AAPL_CHAINS = "options/yfinance_AAPL_chain-snapshots_2025-11-24_2025-12-05.csv.gz"
DAYS_PER_YEAR = 365.0  # the trader-units theta convention (the NumPy formulas)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
AAPL_SNAPSHOT = "2025-11-24 10:10:54"  # ET
AAPL_RATE, AAPL_YIELD = 0.04, 0.004  # a plausible rate and dividend yield for late 2025 (any r, q >= 0 will do)


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


# rows of mixed moneyness, expiry and IV: the draws both chain-level comparisons below take
CHAIN_ROWS = {
    "seed": st.integers(0, 2**31),
    "n": st.integers(1, 40),
    "S": st.floats(20.0, 2000.0),
    "r": st.sampled_from([-0.01, 0.0, 0.045]),
    "q": st.sampled_from([-0.01, 0.0, 0.015]),
    "call": st.booleans(),
    "move": st.floats(-0.02, 0.02),
    "minutes": st.floats(1.0, 390.0),
}


def _chain_rows(
    rng: np.random.Generator, n: int, S: float, r: float, q: float, call: bool
) -> tuple[F64, F64, F64, F64, F64]:
    """(K, T, IV, mid, European IV of the mid) of ``n`` random contracts: strikes within e^+-0.4 of
    the spot, 0.5-60 days, American prices at IVs of 5-120 % moved 3 % either way in half of them."""
    K = np.round(S * np.exp(rng.uniform(-0.4, 0.4, n)), 2)
    T = rng.uniform(0.5, 60.0, n) / 365.0
    sig = rng.uniform(0.05, 1.2, n)
    mid = np.asarray(opt.american_price(S, K, T, r, sig, q, call), float) * rng.choice([1.0, 1.0, 0.97, 1.03], n)
    return K, T, sig, mid, np.asarray(opt.implied_vol(mid, S, K, T, r, q, call), float)


@given(**CHAIN_ROWS)
@settings(max_examples=300, deadline=None)
def test_the_fused_bracket_and_bounds_are_the_two_steps_bit_for_bit(
    seed: int, n: int, S: float, r: float, q: float, call: bool, move: float, minutes: float
) -> None:
    """Selection's one-pass :func:`bracket_gain_and_delta_bounds` against :func:`iv_bracket` then
    :func:`gain_and_delta_bounds` (the functions the soundness tests above hold), on rows of mixed
    moneyness, expiry and IV (some deep in the money, some without a European IV)."""
    rng = np.random.default_rng(seed)
    K, T, _sig, mid, iv_eu = _chain_rows(rng, n, S, r, q, call)
    dS, days = move * S, minutes / 390.0
    lo, hi = iv_bracket(mid, iv_eu, S, K, T, r, q, call, american=True)
    want = gain_and_delta_bounds(S, K, T, r, q, call, lo, hi, dS, days, DELTA_MAX)
    got = bracket_gain_and_delta_bounds(mid, iv_eu, S, K, T, r, q, call, dS, days, DELTA_MAX)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w, equal_nan=True)


def _american_soundness(
    mid: F64, S: float, K: F64, T: F64, r: float, q: float, call: bool, moves: tuple[float, ...], days: float
) -> int:
    """Assert selection's one-call bound and delta range hold at the core's American IV of each row
    (where both are defined), for each move ``dS``; returns how many (row, move) were checked."""
    iv_eu = np.asarray(opt.implied_vol(mid, S, K, T, r, q, call), float)
    iv_am = np.asarray(opt.implied_vol(mid, S, K, T, r, q, call, style="american"), float)
    solved = np.isfinite(iv_am) & (iv_am > 0)
    checked = 0
    for dS in moves:
        bound, dlo, dhi = bracket_gain_and_delta_bounds(mid, iv_eu, S, K, T, r, q, call, dS, days, DELTA_MAX)
        for i in np.flatnonzero(solved & np.isfinite(bound)).tolist():
            k, t = np.array([K[i]]), np.array([T[i]])
            delta = float(opt.bs_greeks(S, k, t, r, np.array([iv_am[i]]), q, call)["delta"][0])
            assert dlo[i] - DELTA_RANGE_SLACK <= delta <= dhi[i] + DELTA_RANGE_SLACK, (i, delta, dlo[i], dhi[i])
            assert _dv(S, float(K[i]), float(T[i]), r, q, call, float(iv_am[i]), dS, days) <= bound[i], (i, dS)
            checked += 1
    return checked


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 30),
    S=st.floats(20.0, 2000.0),
    r=st.floats(0.0, 0.08),
    q=st.sampled_from([0.0, 0.004, 0.03]),
    call=st.booleans(),
    move=st.floats(-0.02, 0.02),
    minutes=st.floats(1.0, 390.0),
)
@settings(max_examples=150, deadline=None)
def test_the_one_call_bound_holds_at_the_american_iv(
    seed: int, n: int, S: float, r: float, q: float, call: bool, move: float, minutes: float
) -> None:
    """What selection calls, row by row at the core's American IV, on rows of mixed moneyness,
    expiry and IV, some quoted off the model price."""
    rng = np.random.default_rng(seed)
    K = np.round(S * np.exp(rng.uniform(-0.3, 0.3, n)), 2)
    T = rng.uniform(0.5, 60.0, n) / 365.0
    sig = rng.uniform(0.05, 1.2, n)
    mid = np.asarray(opt.american_price(S, K, T, r, sig, q, call), float) * rng.choice([1.0, 0.99, 1.01], n)
    _american_soundness(mid, S, K, T, r, q, call, (move * S,), minutes / 390.0)


def test_the_one_call_bound_holds_on_a_real_chain(shared_data: Path) -> None:
    """A real American chain (AAPL, yfinance's snapshot of 2025-11-24 10:10 ET: about 1,900
    two-sided quotes, expiries from 4 days to 2 years; with a dividend yield the calls' bracket takes
    the early-exercise premium too): the bound and the delta range hold at the core's American IV of
    every mid they bound, for a move of 1 % each way."""
    df = pd.read_csv(shared_data / AAPL_CHAINS)
    snap = df[(df["snapshot_commit_et"] == AAPL_SNAPSHOT) & (df["bid"] > 0) & (df["ask"] > df["bid"])]
    S = float(snap["underlying_price"].iloc[0])
    expiry = pd.to_datetime(snap["expiration"]) + pd.Timedelta(hours=16)  # the close, ET
    years = ((expiry - pd.Timestamp(AAPL_SNAPSHOT)).dt.total_seconds() / (365.0 * 86400.0)).to_numpy(float)
    checked = 0
    for call in (True, False):
        rows = (snap["option_type"] == ("C" if call else "P")).to_numpy()
        mid = 0.5 * (snap["bid"].to_numpy(float) + snap["ask"].to_numpy(float))[rows]
        K = snap["strike"].to_numpy(float)[rows]
        moves = (-0.01 * S, 0.01 * S)
        checked += _american_soundness(mid, S, K, years[rows], AAPL_RATE, AAPL_YIELD, call, moves, 0.5)
    assert checked > 1000  # most of the chain is bounded and solved: the test says something


def test_bad_rows_bound_nothing_and_leave_the_others_alone() -> None:
    """A NaN mid, a zero or NaN strike, an expired contract, a NaN or zero IV: NaN (never prunes), no
    error; a good row beside them has the numbers it has alone (rows are independent)."""
    S, r, q = 100.0, 0.045, 0.01
    K = np.array([100.0, 100.0, 0.0, math.nan, 100.0, 100.0, 100.0])
    T = np.array([0.05, 0.05, 0.05, 0.05, 0.0, 0.05, 0.05])
    mid = np.array([2.0, math.nan, 2.0, 2.0, 2.0, 2.0, 2.0])
    iv = np.array([0.25, 0.25, 0.25, 0.25, 0.25, math.nan, 0.0])
    for call in (True, False):
        got = bracket_gain_and_delta_bounds(mid, iv, S, K, T, r, q, call, 1.0, 0.5, DELTA_MAX)
        alone = bracket_gain_and_delta_bounds(mid[:1], iv[:1], S, K[:1], T[:1], r, q, call, 1.0, 0.5, DELTA_MAX)
        for g, a in zip(got, alone, strict=True):
            assert np.isfinite(g[0]) and g[0] == a[0]
            assert np.isnan(g[1:]).all()


def test_no_rows_and_rows_of_different_lengths() -> None:
    e = np.array([])
    for out in bracket_gain_and_delta_bounds(e, e, 100.0, e, e, 0.04, 0.0, False, 1.0, 0.5, DELTA_MAX):
        assert out.shape == (0,)
    one, two = np.ones(1), np.ones(2)
    with pytest.raises(ValueError, match="one length"):
        bracket_gain_and_delta_bounds(one, one, 100.0, two, one, 0.04, 0.0, False, 1.0, 0.5, DELTA_MAX)
    with pytest.raises(ValueError, match="one length"):
        gain_and_delta_bounds(100.0, one, two, 0.04, 0.0, True, one, one, 1.0, 0.5, DELTA_MAX)


# --- the NumPy formulas the kernel replaced, verbatim (a second check, to rounding) ---------------


def _np_ncdf(x: F64) -> F64:
    return np.asarray(0.5 * special.erfc(-x / math.sqrt(2.0)), dtype=np.float64)


def _np_npdf(x: F64) -> F64:
    return np.asarray(INV_SQRT_2PI * np.exp(-0.5 * x * x), dtype=np.float64)


def _np_iv_bracket(
    mid: F64, iv_eu: F64, S: float, K: F64, T: F64, r: float, q: float, is_call: bool, american: bool
) -> tuple[F64, F64]:
    hi = iv_eu * (1.0 + SIGMA_SLACK)
    if american and (r < 0 or q < 0):
        return np.full_like(iv_eu, np.nan), hi
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rt = np.sqrt(T)
        d1 = (math.log(S) - np.log(K) + (r - q) * T) / (iv_eu * rt) + 0.5 * iv_eu * rt
        sigma_vega = iv_eu * S * np.exp(-q * T) * _np_npdf(d1) * rt
        conditioned = mid <= MAX_CONDITION * sigma_vega
    hi = np.where(conditioned, hi, np.nan)
    carry = q if is_call else r
    if not american or carry == 0:
        return np.where(conditioned, iv_eu * (1.0 - SIGMA_SLACK), np.nan), hi
    eep = (S if is_call else K) * (1.0 - np.exp(-carry * T))
    reduced = mid - eep - PRICE_SLACK * mid
    with np.errstate(invalid="ignore"):
        lo = np.asarray(opt.implied_vol(np.where(reduced > 0, reduced, np.nan), S, K, T, r, q, is_call), float)
    return np.where(conditioned, lo * (1.0 - SIGMA_SLACK), np.nan), hi


def _np_gain_and_delta_bounds(
    S: float,
    K: F64,
    T: F64,
    r: float,
    q: float,
    is_call: bool,
    sigma_lo: F64,
    sigma_hi: F64,
    dS: float,
    trading_days: float,
    delta_max: float,
) -> tuple[F64, F64, F64, F64]:
    """The old bounds, and the sum of the bound's terms' magnitudes (the scale of its rounding)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rt = np.sqrt(T)
        a, b = sigma_lo * rt, sigma_hi * rt
        A = math.log(S) - np.log(K) + (r - q) * T
        d1a, d1b, d2a, d2b = A / a + 0.5 * a, A / b + 0.5 * b, A / a - 0.5 * a, A / b - 0.5 * b
        root = np.sqrt(2.0 * np.abs(A))
        inside = (a < root) & (root < b)
        d1min = np.where((A > 0) & inside, root, np.minimum(d1a, d1b)) - D_SLACK
        d1max = np.maximum(d1a, d1b) + D_SLACK
        d2min = np.minimum(d2a, d2b) - D_SLACK
        d2max = np.where((A < 0) & inside, -root, np.maximum(d2a, d2b)) + D_SLACK
        eq, er = np.exp(-q * T), np.exp(-r * T)
        n1min, n1max = _np_ncdf(d1min), _np_ncdf(d1max)
        if is_call:
            dlo, dhi = eq * n1min, eq * n1max
        else:
            dlo, dhi = eq * (n1min - 1.0), eq * (n1max - 1.0)
        t_delta = np.minimum(dhi * dS if dS >= 0 else dlo * dS, delta_max * abs(dS))
        spans_zero = (d1min <= 0) & (d1max >= 0)
        near0 = np.minimum(np.abs(d1min), np.abs(d1max))
        phi_max = np.where(spans_zero, INV_SQRT_2PI, _np_npdf(near0))
        phi_min = _np_npdf(np.maximum(np.abs(d1min), np.abs(d1max)))
        t_gamma = 0.5 * (eq * phi_max / (S * a)) * dS * dS
        theta = -eq * S * phi_min * a / (2.0 * T)
        if is_call:
            theta = theta - r * K * er * _np_ncdf(d2min if r >= 0 else d2max)
            theta = theta + q * S * eq * _np_ncdf(d1max if q >= 0 else d1min)
        else:
            theta = theta + r * K * er * _np_ncdf(-(d2min if r >= 0 else d2max))
            theta = theta - q * S * eq * _np_ncdf(-(d1max if q >= 0 else d1min))
        t_theta = theta / DAYS_PER_YEAR * DAYS_PER_YEAR / SESSIONS_PER_YEAR * trading_days
        scale = np.abs(t_delta) + np.abs(t_gamma) + np.abs(t_theta)
        margin = BOUND_SLACK * scale + ABS_SLACK
        out = t_delta + t_gamma + t_theta + margin
    ok = (T > 0) & (a > 0) & (b >= a) & np.isfinite(out)
    bounded = (T > 0) & (a > 0) & (b >= a)
    return np.where(ok, out, np.nan), np.where(bounded, dlo, np.nan), np.where(bounded, dhi, np.nan), scale


@given(**CHAIN_ROWS)
@settings(max_examples=300, deadline=None)
def test_the_kernel_is_the_numpy_formulas_to_rounding(
    seed: int, n: int, S: float, r: float, q: float, call: bool, move: float, minutes: float
) -> None:
    """The bracket: its upper end and a lower end without a solve to 1e-15 (the same arithmetic),
    a solved lower end to 1e-9 (the reduced price takes libm's exp where NumPy took its own, an ulp
    apart, and the IV moves by that times the reduced price's condition number; far inside
    SIGMA_SLACK = 1e-6), NaN in the same places. The bounds over a bracket (the kernel's own, as
    selection's one call takes it, and random ones): the gain bound to 1e-12 of its terms' magnitudes
    (its margin is BOUND_SLACK = 1e-9 of them; libm's erfc against SciPy's, one theta factor against
    three), the delta range to 1e-14. Rows of mixed moneyness, expiry and IV (some deep in the money,
    some without a European IV)."""
    rng = np.random.default_rng(seed)
    K, T, sig, mid, iv_eu = _chain_rows(rng, n, S, r, q, call)
    dS, days = move * S, minutes / 390.0
    for american in (True, False):
        solved = american and (q if call else r) > 0
        want_b = _np_iv_bracket(mid, iv_eu, S, K, T, r, q, call, american)
        got_b = iv_bracket(mid, iv_eu, S, K, T, r, q, call, american)
        for g, w, rtol in zip(got_b, want_b, (1e-9 if solved else 1e-15, 1e-15), strict=True):
            assert np.array_equal(np.isnan(g), np.isnan(w))
            assert np.allclose(g, w, rtol=rtol, atol=0.0, equal_nan=True)
    lo, hi = iv_bracket(mid, iv_eu, S, K, T, r, q, call, True)
    wide_lo = sig * rng.uniform(0.5, 1.0, n)
    for s_lo, s_hi, got in (
        (lo, hi, bracket_gain_and_delta_bounds(mid, iv_eu, S, K, T, r, q, call, dS, days, DELTA_MAX)),
        (wide_lo, wide_lo * rng.uniform(1.0, 1.5, n), None),
    ):
        want = _np_gain_and_delta_bounds(S, K, T, r, q, call, s_lo, s_hi, dS, days, DELTA_MAX)
        if got is None:
            got = gain_and_delta_bounds(S, K, T, r, q, call, s_lo, s_hi, dS, days, DELTA_MAX)
        scale = want[3]
        for g, w, tol in zip(got, want[:3], (1e-12 * scale + 1e-15, 1e-14, 1e-14), strict=True):
            assert np.array_equal(np.isnan(g), np.isnan(w))
            ok = np.isfinite(w)
            assert (np.abs(g[ok] - w[ok]) <= np.broadcast_to(tol, w.shape)[ok]).all()
