"""American implied vol: the tight bracket probed from the European IV (core/_opt_american.pxi).

Oracles: an independent bisection on ``american_price`` (pure Python, 200 halvings of [1e-4, 10]),
QuantLib's Bjerksund-Stensland 1993 engine as the pricer of a round trip, the generating sigma
where the price pins it, and the sign of f = price - P on both sides of the answer. The hand-picked
cases are checked to take the path they are named for (the first Newton probe below / above the
root, a rounding-negative f at the European IV) before the answer is checked, so a bracket that
kept a probe on the wrong side of the root (and converged to a probe instead of a root) fails.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as o

# the solver's constants (core/_opt_american.pxi): Brent's stop tol1 = TOL_REL |sigma| + TOL_ABS,
# the probe's stretch, the closed forms' noise relative to S + K, the sigma range
TOL_REL, TOL_ABS = 4.0e-16, 0.5e-14
PROBE_OVER = 1.02
AM_NOISE = 1e-12
SIG_LO, SIG_HI = 1e-4, 10.0


def _f(P: float, S: float, K: float, T: float, r: float, q: float, call: bool, v: float, method: str) -> float:
    return float(o.american_price(S, K, T, r, v, q, call, method=method)) - P


def _bisect(P: float, S: float, K: float, T: float, r: float, q: float, call: bool, method: str) -> float:
    """A sign change of f in [1e-4, 10] by plain bisection (f(1e-4) < 0 < f(10) assumed)."""
    lo, hi = SIG_LO, SIG_HI
    assert _f(P, S, K, T, r, q, call, lo, method) < 0.0 < _f(P, S, K, T, r, q, call, hi, method)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _f(P, S, K, T, r, q, call, mid, method) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _first_probe(P: float, S: float, K: float, T: float, r: float, q: float, call: bool) -> tuple[float, float, float]:
    """(se, f(se), the solver's first probe): the European IV, f there, and se minus the premium over
    the European vega (times PROBE_OVER, plus tol1) towards the root."""
    se = float(o.implied_vol(P, S, K, T, r, q, call))
    fs = _f(P, S, K, T, r, q, call, se, "bjerksund_stensland_2002")
    vega = float(o.bs_greeks(S, K, T, r, se, q, call)["vega"])
    step = PROBE_OVER * abs(fs) / vega + TOL_REL * se + TOL_ABS
    return se, fs, se - math.copysign(step, fs)


def _assert_root(
    sig: float,
    P: float,
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    call: bool,
    method: str = "bjerksund_stensland_2002",
) -> None:
    """sig reproduces P to 1e-12 relative (plus the closed forms' noise) and f changes sign across
    it (1e-10 either side: far beyond tol1, far inside any probe step of these cases)."""
    noise = AM_NOISE * (S + K)
    assert abs(_f(P, S, K, T, r, q, call, sig, method)) <= 1e-12 * P + 1e-3 * noise
    assert _f(P, S, K, T, r, q, call, sig * (1.0 - 1e-10), method) < 0.0
    assert _f(P, S, K, T, r, q, call, sig * (1.0 + 1e-10), method) > 0.0


# (S, K, T, r, q, call, sigma): puts and a call with a dividend yield, where f(se) > 0 (the root is
# below the European IV), and whether the first probe lands below the root (one probe brackets it)
# or above it (the secant steps go on from there)
DOWN_CASES = [
    pytest.param(100.0, 80.0, 0.1, 0.08, 0.02, False, 0.8, True, id="put-one-probe"),
    pytest.param(100.0, 130.0, 1.0, 0.05, 0.04, False, 0.4, False, id="deep-itm-put-probe-above-root"),
    pytest.param(100.0, 130.0, 1.0, 0.05, 0.02, False, 0.4, False, id="deep-itm-put-three-probes"),
    pytest.param(100.0, 90.0, 0.1, 0.02, 0.04, True, 0.2, False, id="itm-call-dividend-four-probes"),
    pytest.param(100.0, 120.0, 0.1, 0.08, 0.0, False, 0.4, False, id="itm-put-no-bracket-full-brent"),
]


@pytest.mark.parametrize(("S", "K", "T", "r", "q", "call", "v", "first_below"), DOWN_CASES)
def test_root_below_the_european_iv(
    S: float, K: float, T: float, r: float, q: float, call: bool, v: float, first_below: bool
) -> None:
    """The answer is the generating sigma, the bisection's root and a sign change of f, whether the
    first probe brackets the root or lands above it (a probe above the root is a new upper end,
    never a lower one)."""
    P = float(o.american_price(S, K, T, r, v, q, call))
    se, fs, x1 = _first_probe(P, S, K, T, r, q, call)
    assert fs > 0.0 and se > v  # the early-exercise premium puts the European IV above the root
    assert (_f(P, S, K, T, r, q, call, x1, "bjerksund_stensland_2002") < 0.0) == first_below
    sig, reason = o.implied_vol(P, S, K, T, r, q, call, style="american", return_reason=True)
    assert reason == o.OK
    _assert_root(float(sig), P, S, K, T, r, q, call)
    assert abs(sig - v) <= 1e-12 * v
    assert abs(sig - _bisect(P, S, K, T, r, q, call, "bjerksund_stensland_2002")) <= 1e-13


def test_rounding_negative_f_at_the_european_iv() -> None:
    """A call without dividends is never exercised early: f(se) is the European price's rounding,
    here negative, and the root lies a hair above se (the solver probes upwards instead of bracketing
    with sigma = 10). The answer is se to within tol1 and a sign change of f."""
    S, K, T, r, q, v = 100.0, 130.0, 1.0, 0.05, 0.0, 0.2
    P = float(o.american_price(S, K, T, r, v, q, True))
    se, fs, x1 = _first_probe(P, S, K, T, r, q, True)
    assert fs < 0.0 and x1 > se
    sig, reason = o.implied_vol(P, S, K, T, r, q, True, style="american", return_reason=True)
    assert reason == o.OK
    assert abs(sig - se) <= 2.0 * (TOL_REL * se + TOL_ABS)
    assert _f(P, S, K, T, r, q, True, sig * (1.0 - 1e-12), "bjerksund_stensland_2002") < 0.0
    assert _f(P, S, K, T, r, q, True, sig * (1.0 + 1e-12), "bjerksund_stensland_2002") > 0.0


def test_flat_price_keeps_outside_model_range() -> None:
    """Deep in the money a call without dividends is worth its forward intrinsic S - K e^{-rT} at
    every sigma up to ~0.05: the model gives that price at sigma = 1e-4, so it names no vol
    (OUTSIDE_MODEL_RANGE), although f is exactly 0 just below the European IV as well."""
    S, K, T, r, q = 624.1, 572.0, 0.0425, 0.00655, 0.0
    P = float(o.american_price(S, K, T, r, SIG_LO, q, True))
    assert abs(P - (S - K * math.exp(-r * T))) <= 1e-15 * P
    assert _f(P, S, K, T, r, q, True, 0.03, "bjerksund_stensland_2002") == 0.0  # flat
    sig, reason = o.implied_vol(P, S, K, T, r, q, True, style="american", return_reason=True)
    assert reason == o.OUTSIDE_MODEL_RANGE and np.isnan(sig)


def test_short_dated_chain_matches_bisection() -> None:
    """A SPY-like chain (S ~ 500, strikes +-8%, 1-30 days, r 4.5%, q 0 or 1.3%, quotes rounded to a
    tenth of a cent, 5 cents or more above intrinsic): every answer is the bisection's root to within
    the price's noise over the slope, and a sign change of f."""
    rng = np.random.default_rng(23)
    n = 120
    S = rng.uniform(480.0, 530.0, n)
    K = np.round(S * np.exp(rng.uniform(-0.08, 0.08, n)))
    T = rng.integers(1, 31, n) / 365.0
    q = np.where(rng.random(n) < 0.5, 0.0, 0.013)
    v = rng.uniform(0.08, 0.6, n)
    call = rng.random(n) < 0.5
    r = 0.045
    P = np.round(o.american_price(S, K, T, r, v, q, call), 3)
    keep = P - np.where(call, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0)) > 0.05  # off intrinsic
    S, K, T, q, v, call, P = S[keep], K[keep], T[keep], q[keep], v[keep], call[keep], P[keep]
    n = len(P)
    assert n > 90
    sig, reason = o.implied_vol(P, S, K, T, r, q, call, style="american", return_reason=True)
    assert np.all(reason == o.OK)
    for i in range(n):
        args = (float(P[i]), float(S[i]), float(K[i]), float(T[i]), r, float(q[i]), bool(call[i]))
        ref = _bisect(*args, "bjerksund_stensland_2002")
        slope = float(o.bs_greeks(S[i], K[i], T[i], r, ref, q[i], call[i])["vega"])
        assert abs(sig[i] - ref) <= 1e-13 + 4.0 * AM_NOISE * (S[i] + K[i]) / slope, i
        _assert_root(float(sig[i]), *args)


def _ql_bs1993(S: float, K: float, days: int, r: float, q: float, call: bool) -> tuple[Any, Any]:
    """A QuantLib American option under BjerksundStenslandApproximationEngine and its vol quote."""
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(2, 1, 2025)
    dc = ql.Actual365Fixed()
    ql.Settings.instance().evaluationDate = today
    vol = ql.SimpleQuote(0.2)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)),
    )
    opt = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, K), ql.AmericanExercise(today, today + days)
    )
    opt.setPricingEngine(ql.BjerksundStenslandApproximationEngine(proc))
    return opt, vol


def test_quantlib_bs1993_round_trip() -> None:
    """QuantLib prices at a known sigma, the core inverts with the same formula (method
    bjerksund_stensland_1993), QuantLib reprices at the answer: the price comes back to the two
    implementations' agreement (~1e-10 of max(price, 1), QuantLib's normal cdf) and sigma to that
    over the vega."""
    rng = np.random.default_rng(29)
    checked = 0
    for _ in range(150):
        S, K = 100.0, float(rng.uniform(85.0, 118.0))
        days = int(rng.integers(2, 120))
        r, q, v = float(rng.uniform(0.0, 0.08)), float(rng.uniform(0.0, 0.05)), float(rng.uniform(0.08, 0.8))
        call = bool(rng.random() < 0.4)
        opt, vol = _ql_bs1993(S, K, days, r, q, call)
        vol.setValue(v)
        P = opt.NPV()
        intrinsic = max(S - K, 0.0) if call else max(K - S, 0.0)
        if P - intrinsic < 1e-3:
            continue  # at intrinsic: no vol information
        sig, reason = o.implied_vol(
            P, S, K, days / 365.0, r, q, call, style="american", method="bjerksund_stensland_1993", return_reason=True
        )
        assert reason == o.OK
        vol.setValue(float(sig))
        agree = 2e-10 * max(P, 1.0)
        assert abs(opt.NPV() - P) <= agree
        vega = float(o.bs_greeks(S, K, days / 365.0, r, v, q, call)["vega"])
        assert abs(sig - v) <= 4.0 * agree / vega + 1e-12
        checked += 1
    assert checked > 100


@settings(max_examples=200, deadline=None)
@given(
    S=st.floats(20.0, 1000.0),
    m=st.floats(-0.15, 0.15),
    days=st.integers(1, 90),
    r=st.floats(0.0, 0.08),
    q=st.floats(0.0, 0.05),
    v=st.floats(0.05, 1.2),
    call=st.booleans(),
    jitter=st.floats(-0.02, 0.02),
)
def test_answer_is_a_sign_change_property(
    S: float, m: float, days: int, r: float, q: float, v: float, call: bool, jitter: float
) -> None:
    """Short-dated contracts near the money, quotes off the model by up to 2%: an OK answer
    reproduces the price and f changes sign across it; the generating sigma comes back where the
    quote is the model price and the price pins the vol."""
    K, T = S * math.exp(m), days / 365.0
    model = float(o.american_price(S, K, T, r, v, q, call))
    P = model * (1.0 + jitter)
    intrinsic = max(S - K, 0.0) if call else max(K - S, 0.0)
    sig, reason = o.implied_vol(P, S, K, T, r, q, call, style="american", return_reason=True)
    bound = S if call else K
    if P - intrinsic <= 1e-6 * (S + K) or bound <= P:
        return  # at intrinsic or above the bound: the reason codes are another test's
    if reason != o.OK:
        # the model cannot reach the quote: below its price at the lowest sigma or above the highest
        assert reason == o.OUTSIDE_MODEL_RANGE
        assert (
            _f(P, S, K, T, r, q, call, SIG_LO, "bjerksund_stensland_2002") >= 0.0
            or _f(P, S, K, T, r, q, call, SIG_HI, "bjerksund_stensland_2002") < 0.0
        )
        return
    noise = AM_NOISE * (S + K)
    assert abs(_f(P, S, K, T, r, q, call, float(sig), "bjerksund_stensland_2002")) <= 1e-12 * P + 1e-3 * noise
    w = 1e-9 * sig
    assert _f(P, S, K, T, r, q, call, float(sig) - w, "bjerksund_stensland_2002") <= 1e-3 * noise
    assert _f(P, S, K, T, r, q, call, float(sig) + w, "bjerksund_stensland_2002") >= -1e-3 * noise
    up = float(o.american_price(S, K, T, r, v * 1.001, q, call))
    if jitter == 0.0 and up - model > 1e-7 * model and model > 1e-6 * (S + K):
        assert abs(sig - v) <= 1e-8 * v
