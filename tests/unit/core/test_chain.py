"""Chain helpers: hand-derived cases."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from aiots.core import chain, options


def test_implied_forward_recovers_parity_forward() -> None:
    S, T, r, q, v = 100.0, 0.5, 0.04, 0.015, 0.25
    K = np.arange(70.0, 131.0, 5.0)
    C = options.bs_price(S, K, T, r, v, q, True)
    P = options.bs_price(S, K, T, r, v, q, False)
    P[0] = np.nan  # a missing quote is skipped
    est = chain.implied_forward(K, C, P, T, r, spot=S)
    F = S * np.exp((r - q) * T)
    assert est.forward == pytest.approx(F, rel=1e-12)
    assert est.q == pytest.approx(q, abs=1e-12)
    assert est.n_used == 5
    # noisy far strikes do not move the median of the near-ATM ones
    C2 = C.copy()
    C2[-1] += 3.0
    assert chain.implied_forward(K, C2, P, T, r).forward == pytest.approx(F, rel=1e-12)
    with pytest.raises(ValueError):
        chain.implied_forward(K, C, P[:-1], T, r)
    with pytest.raises(ValueError):
        chain.implied_forward(K, C * np.nan, P, T, r)


def test_strike_from_delta_round_trips() -> None:
    S, T, r, q = 100.0, 0.25, 0.05, 0.02
    sig = np.array([0.2, 0.3, 0.5])
    kc = chain.strike_from_delta(0.25, S, T, r, sig, q, True)
    kp = chain.strike_from_delta(-0.25, S, T, r, sig, q, False)
    np.testing.assert_allclose(options.bs_greeks(S, kc, T, r, sig, q, True)["delta"], 0.25, atol=1e-13)
    np.testing.assert_allclose(options.bs_greeks(S, kp, T, r, sig, q, False)["delta"], -0.25, atol=1e-13)
    assert np.all(kc > S) and np.all(kp < S)
    # hand-derived: forward delta 0.5 call strike = F e^{sigma^2 T/2}
    k50 = chain.strike_from_delta(0.5, S, T, r, 0.2, q, True, delta_type="forward")
    assert k50 == pytest.approx(S * np.exp((r - q) * T) * np.exp(0.5 * 0.04 * T), rel=1e-13)
    assert np.isnan(chain.strike_from_delta(1.2, S, T, r, 0.2))


def test_atm_strike() -> None:
    K = [90, 95, 100, 105, 110]
    assert chain.atm_strike(K, 102.4) == 100.0
    assert chain.atm_strike(K, 102.5) == 100.0  # tie -> lower
    assert chain.atm_strike(K, 100.0, method="delta_neutral", sigma=0.8, T=0.25) == 110.0  # 100 e^0.08 = 108.3
    with pytest.raises(ValueError):
        chain.atm_strike(K, 100.0, method="delta_neutral")


def test_time_to_expiry_new_york_close() -> None:
    # 2025-01-17 16:00 EST = 21:00 UTC; one day before that instant is exactly 1/365 year
    exp = dt.datetime(2025, 1, 17, 21, 0, tzinfo=dt.UTC)
    now = int((exp - dt.timedelta(days=1)).timestamp()) * 10**9
    assert chain.time_to_expiry(now, dt.date(2025, 1, 17)) == pytest.approx(1 / 365, abs=1e-15)
    # summer: 16:00 EDT = 20:00 UTC
    exp2 = dt.datetime(2025, 7, 18, 20, 0, tzinfo=dt.UTC)
    assert chain.expiry_ns("2025-07-18") == int(exp2.timestamp()) * 10**9
    arr = chain.time_to_expiry(np.array([now, now + 86_400 * 10**9]), "2025-01-17")
    np.testing.assert_allclose(arr, [1 / 365, 0.0], atol=1e-15)
    # an early close (day after Thanksgiving 2025, 13:00 EST = 18:00 UTC) is the expiry instant
    exp3 = dt.datetime(2025, 11, 28, 18, 0, tzinfo=dt.UTC)
    assert chain.expiry_ns(dt.date(2025, 11, 28)) == int(exp3.timestamp()) * 10**9


def test_occ_parse_and_format() -> None:
    s = chain.parse_occ("AAPL  250117C00150000")
    assert s == chain.OccSymbol("AAPL", dt.date(2025, 1, 17), "C", 150.0)
    assert chain.format_occ("AAPL", dt.date(2025, 1, 17), "C", 150.0) == "AAPL  250117C00150000"
    assert len(chain.format_occ("SPXW", "2026-03-20", "put", 5875.5)) == 21
    assert chain.format_occ("SPXW", "2026-03-20", "put", 5875.5) == "SPXW  260320P05875500"
    assert chain.parse_occ("SPY250321P00412500").strike == 412.5
    for bad in ("AAPL 250117X00150000", "", "TOOLONGX250117C00150000", "AAPL  251317C00150000"):
        with pytest.raises(ValueError):
            chain.parse_occ(bad)
    with pytest.raises(ValueError):
        chain.format_occ("AAPL", dt.date(2025, 1, 17), "C", 150.0001)
    with pytest.raises(ValueError):
        chain.format_occ("AAPL", dt.date(2025, 1, 17), "X", 150.0)
