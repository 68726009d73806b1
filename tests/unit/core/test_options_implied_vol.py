"""Implied volatility: Jäckel's reference values, mpmath-exact round trips, reason codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as o


def _kappa(price: np.ndarray, sigma: np.ndarray, vega: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return price / (sigma * vega)


def test_lets_be_rational_reference_values(shared_data: Path) -> None:
    """Jäckel's C++ reference outputs (py_lets_be_rational TestValues): Black price and IV."""
    d = json.loads((shared_data / "reference" / "py_lets_be_rational_TestValues.json").read_text())
    inp, out = d["input"], d["output"]
    F = np.array([x["F"] for x in inp], float)
    K = np.array([x["K"] for x in inp], float)
    T = np.array([x["T"] for x in inp], float)
    sig = np.array([x["sigma"] for x in inp], float)
    call = np.array([x["q"] for x in inp]) > 0
    black = np.array([y["black"] for y in out], float)
    mine = o.black76_price(F, K, T, 0.0, sig, call)
    ok = (black > 1e-300) & (T > 0.0)  # T = 0 rows: NaN by design (T must be positive)
    np.testing.assert_allclose(mine[ok], black[ok], rtol=1e-13)
    iv, reason = o.implied_vol(black, F, K, T, 0.0, 0.0, call, return_reason=True)
    kappa = _kappa(black, sig, o.black76_greeks(F, K, T, 0.0, sig, call)["vega"])
    dom = ok & (kappa <= 1e3)
    assert dom.sum() > 900
    assert np.all(reason[dom] == o.OK)
    assert np.max(np.abs(iv[dom] - sig[dom]) / sig[dom]) <= 1e-12
    ref_iv = np.array([y["implied_volatility_from_a_transformed_rational_guess"] for y in out])
    assert np.max(np.abs(iv[dom] - ref_iv[dom]) / ref_iv[dom]) <= 1e-12
    # zero prices carry no information: NaN with INVALID_INPUT, never an exception
    assert np.all(reason[(black <= 0.0) | (T <= 0.0)] == o.INVALID_INPUT)


def test_round_trip_against_mpmath_prices() -> None:
    """Prices computed to 40 digits by mpmath, inverted: |dsigma|/sigma <= 1e-12 in the domain."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    rng = np.random.default_rng(5)
    n = 400
    T = 10 ** rng.uniform(np.log10(1 / 365), np.log10(5), n)
    sig = 10 ** rng.uniform(-2, np.log10(5), n)
    k = rng.uniform(-2, 2, n)  # ln(K/F)
    call = rng.random(n) < 0.5
    S, r, q = 100.0, 0.03, 0.01
    F = S * np.exp((r - q) * T)
    K = F * np.exp(k)
    prices = np.empty(n)
    for i in range(n):
        f, kk, s = mp.mpf(F[i]), mp.mpf(K[i]), mp.mpf(sig[i]) * mp.sqrt(mp.mpf(T[i]))
        d1 = mp.log(f / kk) / s + s / 2
        th = 1 if call[i] else -1
        prices[i] = float(mp.exp(-r * mp.mpf(T[i])) * th * (f * mp.ncdf(th * d1) - kk * mp.ncdf(th * (d1 - s))))
    iv, reason = o.implied_vol(prices, S, K, T, r, q, call, return_reason=True)
    kappa = _kappa(prices, sig, o.bs_greeks(S, K, T, r, sig, q, call)["vega"])
    dom = (prices > 1e-280) & (kappa <= 1e3)
    assert dom.sum() > 150
    err = np.abs(iv[dom] - sig[dom]) / sig[dom]
    assert np.all(reason[dom] == o.OK)
    assert err.max() <= 1e-12, err.max()


@pytest.mark.slow
def test_round_trip_200k_random() -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    T = 10 ** rng.uniform(np.log10(1 / 365), np.log10(5), n)
    sig = 10 ** rng.uniform(-2, np.log10(5), n)
    r = rng.uniform(-0.01, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    S = 100.0
    K = S * np.exp((r - q) * T) * np.exp(rng.uniform(-2, 2, n))
    call = rng.random(n) < 0.5
    p = o.bs_price(S, K, T, r, sig, q, call)
    iv, reason = o.implied_vol(p, S, K, T, r, q, call, return_reason=True)
    kappa = _kappa(p, sig, o.bs_greeks(S, K, T, r, sig, q, call)["vega"])
    dom = (p > 1e-280) & (kappa <= 1e3)
    assert np.all(reason[dom] == o.OK)
    assert np.max(np.abs(iv[dom] - sig[dom]) / sig[dom]) <= 1e-12
    # outside the domain we still never fail hard: finite sigma or NaN with a reason
    assert np.all(np.isfinite(iv) | (reason != o.OK))


def test_matches_py_vollib_lets_be_rational() -> None:
    lbr = pytest.importorskip("py_lets_be_rational")
    rng = np.random.default_rng(9)
    F = rng.uniform(50, 150, 300)
    K = rng.uniform(50, 150, 300)
    T = rng.uniform(0.02, 3, 300)
    sig = rng.uniform(0.05, 1.5, 300)
    call = rng.random(300) < 0.5
    p = o.black76_price(F, K, T, 0.0, sig, call)
    mine = o.implied_vol(p, F, K, T, 0.0, 0.0, call)
    kappa = _kappa(p, sig, o.black76_greeks(F, K, T, 0.0, sig, call)["vega"])
    compared = 0
    for i in np.nonzero(kappa <= 1e3)[0]:
        try:
            ref = lbr.implied_volatility_from_a_transformed_rational_guess(p[i], F[i], K[i], T[i], 1 if call[i] else -1)
        except Exception:  # py_lets_be_rational raises on prices at/below its intrinsic
            continue
        assert abs(mine[i] - ref) <= 1e-11 * ref, (i, mine[i], ref)
        compared += 1
    assert compared > 200


def test_reason_codes() -> None:
    S, K, T, r = 100.0, 100.0, 0.5, 0.05
    prices = np.array([1e-30, 5.0, 0.0, -1.0, np.nan, np.inf, 150.0, 100.0])
    iv, reason = o.implied_vol(prices, S, K, T, r, 0.0, True, return_reason=True)
    assert reason.dtype == np.int8
    assert reason[1] == o.OK and np.isfinite(iv[1])
    assert list(reason[2:6]) == [o.INVALID_INPUT] * 4
    assert reason[6] == o.ABOVE_MAX and reason[7] == o.ABOVE_MAX
    assert np.all(np.isnan(iv[2:]))
    itm = o.implied_vol(20.0, 130.0, 100.0, 1.0, 0.05, 0.0, True, return_reason=True)
    assert itm[1] == o.BELOW_INTRINSIC and np.isnan(itm[0])
    assert o.reason_name(o.BELOW_INTRINSIC) == "BELOW_INTRINSIC"
    assert o.reason_name(99) == "UNKNOWN"
    assert set(o.REASONS.values()) >= {"OK", "BELOW_INTRINSIC", "ABOVE_MAX", "INVALID_INPUT", "NO_CONVERGENCE"}
    bad = o.implied_vol(
        5.0, np.array([100.0, -1.0, np.nan]), 100.0, np.array([0.5, 0.5, 0.5]), 0.05, return_reason=True
    )
    assert list(bad[1]) == [o.OK, o.INVALID_INPUT, o.INVALID_INPUT]


def test_american_style_deep_itm_put() -> None:
    """A deep ITM American put above intrinsic but below the European bound still gets a vol."""
    S, K, T, r, q = 82.0, 100.0, 1.0, 0.06, 0.0  # European put value < intrinsic 18 here
    for method in ("bjerksund_stensland_2002", "baw", "binomial"):
        price = o.american_price(S, K, T, r, 0.25, q, False, method=method, steps=301)
        eu_iv, eu_reason = o.implied_vol(price, S, K, T, r, q, False, return_reason=True)
        am_iv, am_reason = o.implied_vol(
            price, S, K, T, r, q, False, style="american", method=method, steps=301, return_reason=True
        )
        assert am_reason == o.OK
        assert abs(am_iv - 0.25) < 1e-9, (method, am_iv)
        # European IV of the same price is biased upward (or undefined) because of the early-exercise premium
        assert eu_reason != o.OK or eu_iv > 0.25
    iv, reason = o.implied_vol(
        np.array([17.0, 18.0 + 1e-9, 100.0]), S, K, T, r, q, False, style="american", return_reason=True
    )
    assert reason[0] == o.BELOW_INTRINSIC and np.isnan(iv[0])
    # a hair above intrinsic: exercised at every sigma in range -> lowest sigma or no model price
    assert reason[1] in (o.OK, o.OUTSIDE_MODEL_RANGE)
    assert reason[2] == o.ABOVE_MAX


def _check_american_round_trip(S, K, T, r, q, v, call, method):  # type: ignore[no-untyped-def]
    """Round trip price -> American IV; returns the reason codes. OK results reproduce the price to
    the closed forms' noise (1e-12 (S + K)) and the vol where the price pins it; anything else must
    be OUTSIDE_MODEL_RANGE with the price genuinely flat in sigma (the model reaches it at 1e-4)."""
    p = o.american_price(S, K, T, r, v, q, call, method=method)
    iv, reason = o.implied_vol(p, S, K, T, r, q, call, style="american", method=method, return_reason=True)
    p, iv, reason = np.atleast_1d(p), np.atleast_1d(iv), np.atleast_1d(reason)
    S, K, T, r, q, v, call = np.broadcast_arrays(*(np.atleast_1d(x) for x in (S, K, T, r, q, v, call)))
    noise = 1e-12 * (S + K)
    ok = reason == o.OK
    # A price of exactly zero (deep out of the money at low vol) carries no vol information; the
    # documented answer for a non-positive price is INVALID_INPUT.
    zero = (p <= 0) & (reason == o.INVALID_INPUT)
    assert np.all(ok | (reason == o.OUTSIDE_MODEL_RANGE) | zero), np.unique(reason)
    back = o.american_price(S[ok], K[ok], T[ok], r[ok], iv[ok], q[ok], call[ok], method=method)
    assert np.all(np.abs(back - p[ok]) <= 4.0 * noise[ok])
    up = o.american_price(S, K, T, r, v * 1.001, q, call, method=method)
    dn = o.american_price(S, K, T, r, v * 0.999, q, call, method=method)
    # a 0.1% vol change moves the price by > 1e-7 relative, and the price is well above its own noise
    pinned = ok & (up - dn > 1e-7 * p) & (p > 100.0 * noise)
    # The price pins the vol only to its own noise over the slope: a deep OTM price of 1e-7 carries
    # 1e-12 (S + K) of evaluation noise, so sigma is known to noise / (dp/dsigma), not to 1e-8.
    slope = (up - dn) / (0.002 * v)
    tol = 1e-8 * v + 8.0 * noise / np.where(slope > 0, slope, np.inf)
    assert np.all(np.abs(iv[pinned] - v[pinned]) <= tol[pinned])
    rng_ = ~ok
    floor = o.american_price(S[rng_], K[rng_], T[rng_], r[rng_], 1e-4, q[rng_], call[rng_], method=method)
    assert np.all(floor >= p[rng_] - noise[rng_])
    return reason


@pytest.mark.parametrize("method", ["bjerksund_stensland_2002", "baw"])
def test_american_iv_round_trip_with_dividend_yield(method: str) -> None:
    """Calls and puts with q > 0 (random S, K around S, T 1d..2y, r 0..6%, q 0.1..5%, sigma 0.1..1.5):
    every price converges, OUTSIDE_MODEL_RANGE only where flat in sigma (at intrinsic)."""
    rng = np.random.default_rng(17)
    n = 2000
    S = rng.uniform(5.0, 800.0, n)
    K = S * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.integers(1, 731, n) / 365.0
    r = rng.uniform(0.0, 0.06, n)
    q = rng.uniform(0.001, 0.05, n)
    v = rng.uniform(0.1, 1.5, n)
    call = rng.random(n) < 0.5
    reason = _check_american_round_trip(S, K, T, r, q, v, call, method)
    assert np.mean(reason[call] == o.OK) > 0.95 and np.mean(reason[~call] == o.OK) > 0.95


@settings(max_examples=150, deadline=None)
@given(
    S=st.floats(1.0, 1000.0),
    m=st.floats(-0.5, 0.5),
    days=st.integers(1, 730),
    r=st.floats(0.0, 0.08),
    q=st.floats(0.001, 0.08),
    v=st.floats(0.05, 2.0),
    call=st.booleans(),
)
def test_american_iv_round_trip_property(
    S: float, m: float, days: int, r: float, q: float, v: float, call: bool
) -> None:
    _check_american_round_trip(S, S * np.exp(m), days / 365.0, r, q, v, call, "bjerksund_stensland_2002")


def _deep_itm_short_dated(
    rng: np.random.Generator, n: int, S: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(T, sigma, call, K, r, q) of n contracts 0.5-10 days out, 0-9 standard deviations in the money."""
    T = rng.uniform(0.5, 10, n) / 365
    sig = 10 ** rng.uniform(-1.5, 0.5, n)
    call = rng.random(n) < 0.5
    m = rng.uniform(0.0, 9.0, n) * sig * np.sqrt(T)
    K = np.where(call, S * np.exp(-m), S * np.exp(m))
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.05, n)
    return T, sig, call, K, r, q


def test_round_trip_deep_itm_short_dated_at_the_attainable_precision() -> None:
    """Deep in-the-money, 0.5-10 day contracts (up to 9 standard deviations ITM, both rights, r and q
    random): the price pins sigma only to kappa * eps relative (kappa = price / (sigma * vega), eps =
    1.1e-16, a float64 price's rounding), so the found sigma must be within a few ulp of the price of
    that bound everywhere, and within 1e-12 wherever kappa * eps <= 1e-13."""
    rng = np.random.default_rng(2)
    n = 100_000
    S = 100.0
    T, sig, call, K, r, q = _deep_itm_short_dated(rng, n, S)
    p = o.bs_price(S, K, T, r, sig, q, call)
    iv, reason = o.implied_vol(p, S, K, T, r, q, call, return_reason=True)
    att = _kappa(p, sig, o.bs_greeks(S, K, T, r, sig, q, call)["vega"]) * 1.1e-16
    err = np.abs(iv - sig) / sig
    ok = reason == o.OK
    assert ok.sum() > 0.9 * n
    # not OK only where the time value is below the price's last bit (BELOW_INTRINSIC by rounding)
    assert np.all(att[~ok] > 1e-4)
    info = ok & (att <= 1e-3)  # beyond that the time value is a few ulp of the price (0.0 is a fair answer)
    assert np.all(err[info] <= 8.0 * att[info] + 2e-15), np.max(err[info] / att[info])
    assert np.all(err[ok & (att <= 1e-13)] <= 1e-12)


def test_round_trip_deep_itm_short_dated_against_mpmath() -> None:
    """Deep in-the-money 0.5-10 day contracts priced by mpmath (50 digits, then rounded to float64),
    with kappa = price / (sigma * vega) from mpmath too: an oracle independent of the library's own
    pricer, whose input rounding (e.g. ln(S/K)) a bs_price round trip would cancel.

    "The price carries the information" where kappa <= 1e3: the float64 price's own rounding (1.1e-16
    relative) then moves sigma by at most kappa * 1.1e-16 <= 1.1e-13, and the found sigma must be
    within 1e-12 relative. Beyond that (kappa * eps <= 1e-3) it must be within a few times the
    sigma the price's rounding allows; further out the time value is below the price's last bits."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    rng = np.random.default_rng(3)
    n = 1200
    S = 100.0
    T, sig, call, K, r, q = _deep_itm_short_dated(rng, n, S)
    prices = np.empty(n)
    kappa = np.empty(n)
    for i in range(n):
        s, k, t = mp.mpf(S), mp.mpf(K[i]), mp.mpf(T[i])
        rr, qq, v = mp.mpf(r[i]), mp.mpf(q[i]), mp.mpf(sig[i])
        vs = v * mp.sqrt(t)
        d1 = (mp.log(s / k) + (rr - qq + v * v / 2) * t) / vs
        th = 1 if call[i] else -1
        p = th * (s * mp.exp(-qq * t) * mp.ncdf(th * d1) - k * mp.exp(-rr * t) * mp.ncdf(th * (d1 - vs)))
        prices[i] = float(p)
        kappa[i] = float(p / (v * s * mp.exp(-qq * t) * mp.npdf(d1) * mp.sqrt(t)))
    iv, reason = o.implied_vol(prices, S, K, T, r, q, call, return_reason=True)
    err = np.abs(iv - sig) / sig
    carries = kappa <= 1e3
    assert carries.sum() > 300
    assert np.all(reason[carries] == o.OK)
    assert err[carries].max() <= 1e-12, err[carries].max()
    att = kappa * 1.1e-16
    info = (reason == o.OK) & (att <= 1e-3)
    assert info.sum() > 0.7 * n
    assert np.all(err[info] <= 8.0 * att[info] + 2e-15), np.max(err[info] / att[info])
