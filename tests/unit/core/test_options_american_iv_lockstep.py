"""American implied vol solved in lock step (core/_opt_american.pxi ``_am_iv_run``): rows of one call
share each round's pricer call (BS2002: the 8-lane block pricer ``_bs2002_rows``).

The decision layer solves a contract alone or inside a chain and relies on the same answer either
way (services/signals/selection.py), so a row's answer must depend on that row alone: these tests
solve batches, then every row alone, shuffled and in sub-batches (also across the 256-row groups and
the parallel path), and require identical floats and reason codes. Correctness oracles: an
independent bisection on ``american_price`` in Python, QuantLib's Bjerksund-Stensland 1993 engine
(a batch round trip through the other pricers' lock-step path) and the generating sigma.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as o

F64 = npt.NDArray[np.float64]
SIG_LO, SIG_HI = 1e-4, 10.0  # the solver's sigma range
AM_NOISE = 1e-12  # the closed forms' rounding noise relative to S + K
GROUP = 256  # rows per lock-step group (AMI_GROUP): batches larger than this span several groups
BS2002 = "bjerksund_stensland_2002"


def _solve(cols: list[Any], **kw: Any) -> tuple[F64, npt.NDArray[np.int8]]:
    iv, rs = o.implied_vol(*cols, style="american", return_reason=True, **kw)
    return np.asarray(iv, np.float64), np.asarray(rs, np.int8)


def _same(a: F64, b: F64) -> npt.NDArray[np.bool_]:
    """Identical floats (NaN equals NaN)."""
    same: npt.NDArray[np.bool_] = (a == b) | (np.isnan(a) & np.isnan(b))
    return same


def _chain(n: int, seed: int, method: str = BS2002) -> list[Any]:
    """SPY-like quotes: S ~ 500, strikes +-8%, 1-30 days, r 4.5%, q 0 or 1.3%, vol 0.08-0.6, mids
    jittered 1% and rounded to a tenth of a cent (some off the model: OUTSIDE_MODEL_RANGE, at or
    below intrinsic), half puts."""
    rng = np.random.default_rng(seed)
    S = rng.uniform(480.0, 530.0, n)
    K = np.round(S * np.exp(rng.uniform(-0.08, 0.08, n)))
    T = rng.integers(1, 31, n) / 365.0
    r = np.full(n, 0.045)
    q = np.where(rng.random(n) < 0.5, 0.0, 0.013)
    v = rng.uniform(0.08, 0.6, n)
    c = rng.random(n) < 0.5
    P = np.round(o.american_price(S, K, T, r, v, q, c, method=method) * np.exp(rng.normal(0.0, 0.01, n)), 3)
    return [P, S, K, T, r, q, c]


def test_chain_rows_alone_equal_the_batch() -> None:
    """3000 chain rows (12 groups, the parallel path): every row solved alone, and the rows reversed,
    give the batch's floats and reasons bit for bit."""
    cols = _chain(3000, 31)
    iv, rs = _solve(cols)
    assert (rs == o.OK).sum() > 2000 and (rs != o.OK).any()  # mostly solved, some reason codes
    for i in range(len(iv)):
        one, r1 = _solve([c[i : i + 1] for c in cols])
        assert _same(one, iv[i : i + 1])[0] and r1[0] == rs[i], i
    rev, rrev = _solve([c[::-1].copy() for c in cols])
    assert _same(rev[::-1], iv).all() and (rrev[::-1] == rs).all()


def test_scalar_arguments_equal_the_batch() -> None:
    """The 0-d fast path (one contract as Python floats) gives the batch's answer."""
    cols = _chain(200, 37)
    iv, rs = _solve(cols)
    for i in range(0, 200, 7):
        one, r1 = o.implied_vol(
            float(cols[0][i]),
            float(cols[1][i]),
            float(cols[2][i]),
            float(cols[3][i]),
            0.045,
            float(cols[5][i]),
            bool(cols[6][i]),
            style="american",
            return_reason=True,
        )
        assert (one == iv[i] or (math.isnan(one) and math.isnan(iv[i]))) and r1 == rs[i], i


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 2 * GROUP + 40),
    div=st.booleans(),
    long_dated=st.booleans(),
    jitter=st.floats(0.0, 0.1),
)
def test_batch_independence_property(seed: int, n: int, div: bool, long_dated: bool, jitter: float) -> None:
    """Random contracts (puts and calls, with or without a yield, days to two years, quotes off the
    model by up to ``jitter``): a batch, each row alone and a shuffled sub-batch agree bit for bit."""
    rng = np.random.default_rng(seed)
    S = rng.uniform(5.0, 800.0, n)
    K = S * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.integers(1, 731 if long_dated else 45, n) / 365.0
    r = rng.uniform(0.0, 0.08, n)
    q = rng.uniform(0.0, 0.06, n) if div else np.zeros(n)
    v = rng.uniform(0.05, 1.5, n)
    c = rng.random(n) < 0.5
    P = o.american_price(S, K, T, r, v, q, c) * np.exp(rng.normal(0.0, jitter, n))
    cols = [P, S, K, T, r, q, c]
    iv, rs = _solve(cols)
    for i in rng.choice(n, min(n, 25), replace=False):
        one, r1 = _solve([x[i : i + 1] for x in cols])
        assert _same(one, iv[i : i + 1])[0] and r1[0] == rs[i]
    sub = rng.permutation(n)[: int(rng.integers(1, n + 1))]
    iv2, rs2 = _solve([x[sub] for x in cols])
    assert _same(iv2, iv[sub]).all() and (rs2 == rs[sub]).all()


def _bisect(P: float, S: float, K: float, T: float, r: float, q: float, call: bool) -> float:
    """A sign change of f = american_price - P in [1e-4, 10] by plain bisection (pure Python)."""

    def f(v: float) -> float:
        return float(o.american_price(S, K, T, r, v, q, call)) - P

    lo, hi = SIG_LO, SIG_HI
    assert f(lo) < 0.0 < f(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def test_dividend_batch_matches_bisection() -> None:
    """300 dividend-yield contracts in one call (two groups; puts with early-exercise premium take
    the probes and Brent): every answer is the bisection's root to within the price's noise over the
    vega, and the generating sigma where the quote is the model price."""
    rng = np.random.default_rng(41)
    n = 300
    S = rng.uniform(20.0, 400.0, n)
    K = S * np.exp(rng.uniform(-0.25, 0.25, n))
    T = rng.integers(5, 400, n) / 365.0
    r = rng.uniform(0.01, 0.07, n)
    q = rng.uniform(0.005, 0.05, n)
    v = rng.uniform(0.1, 0.9, n)
    c = rng.random(n) < 0.4
    P = o.american_price(S, K, T, r, v, q, c)
    intrinsic = np.where(c, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))
    iv, rs = _solve([P, S, K, T, r, q, c])
    checked = 0
    for i in range(n):
        if P[i] - intrinsic[i] < 1e-4 * S[i]:
            continue  # near intrinsic: the price hardly pins sigma
        assert rs[i] == o.OK, i
        args = (float(P[i]), float(S[i]), float(K[i]), float(T[i]), float(r[i]), float(q[i]), bool(c[i]))
        ref = _bisect(*args)
        vega = float(o.bs_greeks(S[i], K[i], T[i], r[i], ref, q[i], c[i])["vega"])
        tol = 1e-13 + 4.0 * AM_NOISE * (S[i] + K[i]) / vega
        assert abs(iv[i] - ref) <= tol, i
        assert abs(iv[i] - v[i]) <= tol + 1e-12 * v[i], i
        checked += 1
    assert checked > 200


def _ql_bs1993(S: float, K: float, days: int, r: float, q: float, call: bool, v: float) -> float:
    """QuantLib's BjerksundStenslandApproximationEngine (the 1993 formula) price."""
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(2, 1, 2025)
    dc = ql.Actual365Fixed()
    ql.Settings.instance().evaluationDate = today
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), v, dc)),
    )
    opt = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, K), ql.AmericanExercise(today, today + days)
    )
    opt.setPricingEngine(ql.BjerksundStenslandApproximationEngine(proc))
    return float(opt.NPV())


def test_quantlib_bs1993_batch_round_trip() -> None:
    """QuantLib prices 120 contracts at known sigmas; the core inverts them in one call (method
    bjerksund_stensland_1993: lock step with the scalar pricer) and row by row, with the same answers;
    the generating sigma comes back to the two implementations' agreement over the vega."""
    rng = np.random.default_rng(43)
    rows = []
    for _ in range(120):
        K, days = float(rng.uniform(85.0, 118.0)), int(rng.integers(2, 120))
        r, q, v = float(rng.uniform(0.0, 0.08)), float(rng.uniform(0.0, 0.05)), float(rng.uniform(0.08, 0.8))
        call = bool(rng.random() < 0.4)
        P = _ql_bs1993(100.0, K, days, r, q, call, v)
        if P - (max(100.0 - K, 0.0) if call else max(K - 100.0, 0.0)) >= 1e-3:  # off intrinsic
            rows.append((P, 100.0, K, days / 365.0, r, q, call, v))
    x = np.array(rows)
    cols = [x[:, j].copy() for j in range(6)] + [x[:, 6] != 0.0]
    iv, rs = _solve(cols, method="bjerksund_stensland_1993")
    assert len(x) > 90 and (rs == o.OK).all()
    for i in range(len(x)):
        one, _ = _solve([c[i : i + 1] for c in cols], method="bjerksund_stensland_1993")
        assert one[0] == iv[i]
        agree = 2e-10 * max(x[i, 0], 1.0)
        vega = float(o.bs_greeks(100.0, x[i, 2], x[i, 3], x[i, 4], x[i, 7], x[i, 5], bool(x[i, 6]))["vega"])
        assert abs(iv[i] - x[i, 7]) <= 4.0 * agree / vega + 1e-12, i


def test_reason_codes_in_a_batch() -> None:
    """Invalid, below intrinsic, at or above the bound, at intrinsic and flat (the model's price at
    sigma = 1e-4: a deep-ITM call without yield) quotes keep their reason codes inside a batch of
    solvable rows, as alone."""
    S, K, T, r, q = 100.0, 110.0, 0.25, 0.05, 0.01
    good = float(o.american_price(S, K, T, r, 0.3, q, False))
    fS, fK, fT, fr = 624.1, 572.0, 0.0425, 0.00655  # flat in sigma up to ~0.05
    flat = float(o.american_price(fS, fK, fT, fr, SIG_LO, 0.0, True))
    n = 8
    P = np.array([good, -1.0, 5.0, K, K - S, good, float("nan"), flat])
    cols = [P, np.full(n, S), np.full(n, K), np.full(n, T), np.full(n, r), np.full(n, q), np.zeros(n, bool)]
    cols[1][7], cols[2][7], cols[3][7], cols[4][7], cols[5][7], cols[6][7] = fS, fK, fT, fr, 0.0, True
    iv, rs = _solve(cols)
    expect = [
        o.OK,
        o.INVALID_INPUT,
        o.BELOW_INTRINSIC,
        o.ABOVE_MAX,
        o.OUTSIDE_MODEL_RANGE,
        o.OK,
        o.INVALID_INPUT,
        o.OUTSIDE_MODEL_RANGE,
    ]
    assert rs.tolist() == expect
    assert abs(iv[0] - 0.3) <= 1e-12 and iv[5] == iv[0]
    for i in range(n):
        one, r1 = _solve([c[i : i + 1] for c in cols])
        assert _same(one, iv[i : i + 1])[0] and r1[0] == rs[i]
