"""Chain analytics pieces against independent oracles.

* zero-gamma level: the GEX profile rebuilt with py_vollib's analytical BSM gamma on a dense grid;
* max pain / ATM IV: hand-derived;
* American IV of calls with a dividend yield (the core solver): round trip of the core's own
  Bjerksund-Stensland prices, every contract priced above intrinsic must solve.
"""

from __future__ import annotations

import numpy as np
import pytest
from vollib.black_scholes_merton.greeks.analytical import gamma as vollib_gamma

from aiots.core import conventions as cv
from aiots.core import options as opt
from aiots.services.analytics import options_analytics as oa


def _chain(n_strikes: int = 21) -> oa.EnrichedChain:
    rng = np.random.default_rng(3)
    spot = 100.0
    ks = np.linspace(80, 120, n_strikes)
    strike = np.concatenate([ks, ks, ks, ks])
    is_call = np.concatenate([np.ones(n_strikes, bool), np.zeros(n_strikes, bool)] * 2)
    expiry = ["2030-01-18"] * (2 * n_strikes) + ["2030-03-15"] * (2 * n_strikes)
    t = np.where(np.asarray(expiry) == "2030-01-18", 30 / 365, 86 / 365)
    iv = 0.2 + 0.3 * (np.log(strike / spot)) ** 2
    # puts concentrated below the spot, calls above: GEX negative low, positive high (a flip near S)
    heavy = (is_call & (strike > spot)) | (~is_call & (strike < spot))
    oi = np.where(heavy, rng.integers(1000, 3000, strike.size), rng.integers(10, 100, strike.size)).astype(float)
    n = strike.size
    nan = np.full(n, np.nan)
    return oa.EnrichedChain(
        underlying="T", as_of_ns=0, spot=spot, occ=[str(i) for i in range(n)], expiry=expiry, strike=strike,
        is_call=is_call, bid=nan, ask=nan, mid=nan, last=nan, volume=np.zeros(n), open_interest=oi, oi_as_of="",
        t=t, iv=iv, iv_reason=[""] * n, greeks={}, forward={"2030-01-18": 100.2, "2030-03-15": 100.5},
        q_used={"2030-01-18": 0.01, "2030-03-15": 0.02}, q=np.where(np.asarray(expiry) == "2030-01-18", 0.01, 0.02),
        carry={}, forward_source={}, price_source=["quote"] * n,
        excluded=[""] * n, european=np.ones(n, bool), exercise_style="european", pricing_model=oa.EUROPEAN_MODEL,
        spot_ts_ns=0, spot_in_sync=False, spot_lag_s=np.nan, dividend_yield=0.0, gex_gamma=nan, gex_delta=nan,
        gex_iv=iv, gex_smile_filled=0,
    )  # fmt: skip


def test_zero_gamma_vs_vollib_dense_profile() -> None:
    ch = _chain()
    r = 0.04
    got = oa.zero_gamma_level(ch, r)
    q = np.array([ch.q_used[e] for e in ch.expiry])
    grid = np.linspace(75, 125, 5001)

    def gex(s: float) -> float:
        tot = 0.0
        for k, t, v, c, oi, qq in zip(ch.strike, ch.t, ch.iv, ch.is_call, ch.open_interest, q, strict=True):
            tot += (1 if c else -1) * oi * 100 * vollib_gamma("c", s, k, t, r, v, qq)
        return tot * s * s * 0.01

    prof = np.array([gex(s) for s in grid[::50]])  # coarse scan with the oracle, then bisection
    flips = np.flatnonzero(np.sign(prof[:-1]) * np.sign(prof[1:]) < 0)
    assert flips.size, "the test chain must have a gamma flip"
    cand = []
    for i in flips:
        lo, hi = grid[::50][i], grid[::50][i + 1]
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.sign(gex(mid)) == np.sign(gex(lo)):
                lo = mid
            else:
                hi = mid
        cand.append((lo + hi) / 2)
    want = min(cand, key=lambda x: abs(x - ch.spot))
    assert got == pytest.approx(want, abs=1e-3)


def test_max_pain_and_atm_iv_hand_derived() -> None:
    k = np.array([90.0, 100.0, 110.0, 90.0, 100.0, 110.0])
    c = np.array([True, True, True, False, False, False])
    oi = np.array([100.0, 300.0, 50.0, 400.0, 200.0, 20.0])
    # settle 90: puts 200*10 + 20*20 = 2400; 100: calls 100*10 + puts 20*10 = 1200; 110: calls 2000+3000 = 5000
    assert oa.max_pain(k, c, oi) == 100.0
    iv = np.array([0.30, 0.22, 0.20, 0.32, 0.24, np.nan])
    # per-strike means: 90 -> 0.31, 100 -> 0.23, 110 -> 0.20 (put NaN ignored); F = 104 -> 0.23 + 0.4*(0.20-0.23)
    assert oa._atm_iv(k, c, iv, 104.0) == pytest.approx(0.218)


def test_american_call_iv_with_dividend_yield_solves() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    s, r = 100.0, 0.045
    k = rng.uniform(70, 130, n)
    t = rng.uniform(0.05, 1.5, n)
    q = rng.uniform(0.0, 0.04, n)
    vol = rng.uniform(0.15, 0.6, n)
    call = rng.random(n) < 0.5
    price = opt.american_price(s, k, t, r, vol, q, call, method="bjerksund_stensland_2002")
    intrinsic = np.where(call, np.maximum(s - k, 0), np.maximum(k - s, 0))
    _iv, codes = opt.implied_vol(price, s, k, t, r, q, call, style="american", return_reason=True,
                                method="bjerksund_stensland_2002")  # fmt: skip
    codes = np.asarray(codes)
    # identifiable: the price carries time value (an IV at the intrinsic floor is not unique)
    ident = price > intrinsic + 1e-6 * s
    bad = ident & (codes != opt.OK)
    assert not bad.any(), {opt.REASONS.get(int(c), c): int((codes[bad] == c).sum()) for c in np.unique(codes[bad])}


def test_american_iv_round_trip_reprices() -> None:
    """Every identifiable contract's American IV reprices to its price (was a core bug for deep-OTM
    puts, fixed in aiots.core.options 8c6bf46; formerly a strict xfail here)."""
    rng = np.random.default_rng(1)
    n = 2000
    s, r = 100.0, 0.045
    k = rng.uniform(70, 130, n)
    t = rng.uniform(0.05, 1.5, n)
    q = rng.uniform(0.0, 0.04, n)
    vol = rng.uniform(0.15, 0.6, n)
    call = rng.random(n) < 0.5
    price = opt.american_price(s, k, t, r, vol, q, call, method="bjerksund_stensland_2002")
    intrinsic = np.where(call, np.maximum(s - k, 0), np.maximum(k - s, 0))
    ident = price > intrinsic + 1e-6 * s
    iv = opt.implied_vol(price[ident], s, k[ident], t[ident], r, q[ident], call[ident], style="american",
                         method="bjerksund_stensland_2002")  # fmt: skip
    back = opt.american_price(s, k[ident], t[ident], r, iv, q[ident], call[ident], method="bjerksund_stensland_2002")
    assert np.all(np.abs(back - price[ident]) < 1e-6 * s)


# -- forward / implied yield from put-call parity, 25-delta strikes -------------------------------------------------


def test_parity_forward_hand_derived_european() -> None:
    """European prices (vollib BSM): parity is exact, F = S e^{(r-q)T}, q recovered to 1e-10.

    Hand case: S = 100, r = 5%, q = 2%, T = 0.5 -> F = 100 e^{0.015} = 101.511306...; at K = 100,
    C - P = e^{-rT} (F - K) = 0.975310 * 1.511306 = 1.473990...
    """
    from vollib.black_scholes_merton import black_scholes_merton as bsm

    s, r, q, t = 100.0, 0.05, 0.02, 0.5
    ks = np.arange(90.0, 111.0, 2.5)
    c = np.array([bsm("c", s, k, t, r, 0.25, q) for k in ks])
    p = np.array([bsm("p", s, k, t, r, 0.25, q) for k in ks])
    atm = int(np.flatnonzero(ks == 100.0)[0])
    assert c[atm] - p[atm] == pytest.approx(0.9753099120283326 * 1.5113064615719, abs=1e-9)
    strike = np.concatenate([ks, ks])
    is_call = np.concatenate([np.ones(ks.size, bool), np.zeros(ks.size, bool)])
    f = oa._parity_forward(strike, is_call, np.concatenate([c, p]), s, t, r, "bjerksund_stensland_2002", False, 0.0)
    assert f == pytest.approx(101.51130646157189, abs=1e-9)
    assert r - np.log(f / s) / t == pytest.approx(q, abs=1e-10)


def _ql_american(s: float, k: float, t: float, r: float, q: float, vol: float, call: bool) -> float:
    import QuantLib as ql

    today = ql.Date(2, 1, 2030)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    expiry = today + round(t * 365)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(s)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    opt_ = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, k),
                            ql.AmericanExercise(today, expiry))  # fmt: skip
    opt_.setPricingEngine(ql.FdBlackScholesVanillaEngine(proc, 400, 400))
    return float(opt_.NPV())


def test_enrich_forward_and_yield_from_american_chain() -> None:
    """American mids (QuantLib finite differences, flat 30% vol): the implied forward and carry match
    F = S e^{(r-q)T} despite the early-exercise premium biasing raw parity (refined with the
    configured yield q)."""
    import types

    s, r, q, vol = 100.0, 0.05, 0.02, 0.30
    expiry = "2030-07-03"
    t_days = 182
    as_of = cv.expiry_ns(expiry) - t_days * 86_400 * oa.NS
    t = t_days / 365
    ks = np.arange(80.0, 121.0, 5.0)
    rows = [(k, c, _ql_american(s, k, t, r, q, vol, c)) for k in ks for c in (True, False)]
    n = len(rows)
    px = np.array([x[2] for x in rows])
    chain = types.SimpleNamespace(
        underlying="T", occ=[str(i) for i in range(n)], ts=np.full(n, as_of, np.int64), spot=s,
        underlying_price=np.full(n, s), expiry=np.array([expiry] * n, dtype="datetime64[D]"),
        strike=np.array([x[0] for x in rows]), right=np.array(["C" if x[1] else "P" for x in rows]),
        bid=px, ask=px, last=np.full(n, np.nan), volume=np.zeros(n), open_interest=np.zeros(n),
        oi_as_of=np.array(["NaT"] * n, dtype="datetime64[D]"),
    )  # fmt: skip
    # refined with the accurate American model (CRR tree): F and q as hand-derived
    cfg = oa.AnalyticsConfig(rate=r, unusual_threshold=1.0, american_method="binomial", dividend_yield=q)
    ch = oa.enrich(chain, cfg)
    want_f = s * np.exp((r - q) * t)
    assert ch.exercise_style == "american" and ch.pricing_model == "binomial-tree"
    assert ch.forward_source[expiry] == oa.PARITY
    assert ch.carry[expiry] == pytest.approx(r - q, abs=5e-5)
    assert ch.q_used[expiry] == q
    assert ch.forward[expiry] == pytest.approx(want_f, abs=5e-5 * t * s)
    # the American IVs were solved with the configured yield: flat 30% back (tree vs QuantLib FD)
    assert np.nanmax(np.abs(ch.iv - vol)) < 2e-3
    # raw American parity is biased by the early-exercise premium; refining with the default
    # Bjerksund-Stensland 2002 model (4 cents off QuantLib here) removes most of the bias
    args = (ch.strike, ch.is_call, ch.mid, s, t, r, "bjerksund_stensland_2002", True, q)
    q_raw = r - np.log(oa._parity_forward(*args, refine=0) / s) / t
    q_bs = r - np.log(oa._parity_forward(*args) / s) / t
    assert abs(q_raw - q) > 2e-3
    assert abs(q_bs - q) < 1e-3 and abs(q_bs - q) < abs(q_raw - q) / 3


@pytest.mark.parametrize("call", [True, False])
def test_iv_at_25_delta_vs_vollib_bisection(call: bool) -> None:
    """Skewed smile, linear in strike between listed strikes: the strike where vollib's BSM spot delta
    at the smile IV is +/-0.25 (found by bisection) gives the same IV."""
    from vollib.black_scholes_merton.greeks.analytical import delta as vdelta

    s, t, r, q = 100.0, 0.25, 0.04, 0.015
    ks = np.arange(60.0, 141.0, 2.5)
    iv = 0.22 - 0.12 * np.log(ks / s) + 0.3 * np.log(ks / s) ** 2
    target = 0.25 if call else -0.25
    got, _ = oa._iv_at_delta(ks, iv, target, s, t, r, q, call)

    def h(k: float) -> float:
        return float(vdelta("c" if call else "p", s, k, t, r, float(np.interp(k, ks, iv)), q)) - target

    lo, hi = 60.0, 140.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.sign(h(mid)) == np.sign(h(lo)):
            lo = mid
        else:
            hi = mid
    assert got == pytest.approx(float(np.interp((lo + hi) / 2, ks, iv)), abs=1e-9)
    # unreachable within the listed strikes -> NaN
    assert np.isnan(oa._iv_at_delta(ks[:3], iv[:3], 0.25, s, t, r, q, True)[0])
