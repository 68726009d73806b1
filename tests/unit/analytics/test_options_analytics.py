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
        dividend_yield={"2030-01-18": 0.01, "2030-03-15": 0.02},
    )  # fmt: skip


def test_zero_gamma_vs_vollib_dense_profile() -> None:
    ch = _chain()
    r = 0.04
    got = oa.zero_gamma_level(ch, r)
    q = np.array([ch.dividend_yield[e] for e in ch.expiry])
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


@pytest.mark.xfail(
    strict=True,
    reason="core bug (aiots.core.options, not analytics): implied_vol(style='american', BS2002) returns OK with a "
    "far too low IV for deep out-of-the-money puts (price a few cents), where american_price gives NaN; "
    "22 of 2,000 random contracts",
)
def test_american_iv_round_trip_reprices() -> None:
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
