"""The settled contracts of a modelled no-yield chain (:mod:`aiots.core.quote_bounds`).

Oracles: hand-derived cases (Black-Scholes deltas and gains worked out here with ``math.erfc``),
argument checks, and, for the per-row mask, what selection computes for each contract from its
actual quote (a modelled chain's, :class:`~aiots.services.backtest.modelled.ModelledChainView`):
every settled contract fails the liquidity/spread filter, or lies off the delta prefilter band, or
has no American IV, or at its American IV lies outside the delta band or cannot pay
``spread_cover`` half-spreads (the levels' first test), with the core's pricer, IV solvers and
Greeks on each contract alone and selection's formulas written out here.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.core import quote_bounds as qb
from aiots.core.conventions import NS_PER_YEAR, SESSIONS_PER_YEAR, ny_ns
from aiots.services.backtest.modelled import ModelledChainBook, ModelledChainView, ModelSettings
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.model_prune import MARGINS
from aiots.services.signals.selection import DELTA_PREFILTER_MARGIN

# a SPY-like modelled chain: spot, rate, IV, the quoting rule (ModelSettings' defaults)
S, R, SIG = 100.0, 0.045, 0.3
FRAC, MIN_HALF, TICK = 0.0125, 0.01, 0.01
T14 = 14.0 / 365.0
BAND = (0.30, 0.65)  # selection's delta band
COVER = 2.0


def bs_call_delta(K: float, T: float, sigma: float) -> float:
    d1 = (math.log(S / K) + (R + 0.5 * sigma * sigma) * T) / (sigma * math.sqrt(T))
    return 0.5 * math.erfc(-d1 / math.sqrt(2.0))


def mask(is_call: bool, K: list[float], T: list[float], **kw: float) -> list[bool]:
    args = {"S": S, "r": R, "sigma": SIG, "dS": 0.0, "days": 0.5} | kw
    out = qb.settled(
        is_call, args["S"], args["r"], args["sigma"], FRAC, MIN_HALF, TICK, np.array(K), np.array(T),
        args["dS"], args["days"], *BAND, DELTA_PREFILTER_MARGIN, COVER, MARGINS,
    )  # fmt: skip
    every = qb.all_settled(
        is_call, args["S"], args["r"], args["sigma"], FRAC, MIN_HALF, TICK, np.array(K), np.array(T),
        args["dS"], args["days"], *BAND, DELTA_PREFILTER_MARGIN, COVER, MARGINS,
    )  # fmt: skip
    assert every == (bool(out.all()) and len(K) > 0)
    return [bool(x) for x in out]


def test_an_otm_call_far_below_the_band_is_settled() -> None:
    # K = 110, 14 days, IV 0.3: d1 = (ln(100/110) + 0.09 x 0.0384) / 0.0588 = -1.56, delta 0.059, and
    # 0.12 at an IV of 0.4: the IV its quote implies (premium ~0.15, vega ~2.3 per unit of IV, so the
    # quote's rounding moves it by ~0.01) leaves the delta far below the prefilter band [0.25, 0.70],
    # whatever the projected move
    assert bs_call_delta(110.0, T14, SIG) < 0.06 and bs_call_delta(110.0, T14, 0.4) < 0.13
    assert mask(True, [110.0], [T14], dS=3.0) == [True]
    assert mask(True, [110.0], [T14], dS=-3.0) == [True]


def test_an_otm_put_below_the_band_is_settled() -> None:
    # the mirror image: K = 95, |delta| = N(-d1) with d1 = (ln(100/95) + 0.0035) / 0.0588 = 0.93: 0.18,
    # 0.21 at an IV of 0.35 (the put's IV range holds its early-exercise premium too: wider)
    assert 1.0 - bs_call_delta(95.0, T14, SIG) < 0.18 and 1.0 - bs_call_delta(95.0, T14, 0.35) < 0.22
    assert mask(False, [95.0], [T14], dS=-3.0) == [True]


def test_a_contract_whose_iv_its_quote_does_not_pin_is_not_settled() -> None:
    # K = 112 in 7 days: premium ~0.005, below the least half-spread (0.01): the quote holds any IV
    # from ~0 up, so nothing about its delta is shown (selection's liquidity filter drops it instead)
    assert mask(True, [112.0], [7.0 / 365.0], dS=-3.0) == [False]


def test_an_atm_call_with_a_large_move_is_not_settled() -> None:
    # K = 100: delta 0.53 (inside the band), so only the gain can settle it: with dS = +2 it is at
    # least 0.5 x 2 = 1.0 less a day's theta (S sigma phi / (2 sqrt T) / 252 x 0.5 ~ 0.02), far above
    # 2 half-spreads (the premium is ~2.4: 2 x max(0.0125 x 2.4, 0.01) = 0.06)
    assert 0.5 < bs_call_delta(100.0, T14, SIG) < 0.55
    assert mask(True, [100.0], [T14], dS=2.0) == [False]
    assert mask(False, [100.0], [T14], dS=-2.0) == [False]


def test_an_atm_call_with_the_move_against_it_is_settled() -> None:
    # K = 100, dS = -2: delta x dS <= -0.5 x 2 and gamma dS^2 / 2 = phi(d1) / (S sigma sqrt T) x 2 ~ 0.14,
    # so the gain is below -0.8 < 0.06: it cannot pay, at any IV the price pins (condition ~1)
    assert mask(True, [100.0], [T14], dS=-2.0) == [True]
    assert mask(False, [100.0], [T14], dS=2.0) == [True]


def test_the_rows_are_independent_and_all_settled_stops_at_a_row_not_settled() -> None:
    K, T = [110.0, 100.0, 110.0, 108.0], [T14, T14, T14, 7.0 / 365.0]
    assert mask(True, K, T, dS=2.0) == [True, False, True, True]
    assert mask(True, [110.0, 108.0], [T14, 7.0 / 365.0], dS=2.0) == [True, True]


@pytest.mark.parametrize(
    "kw",
    [
        {"S": math.nan},
        {"S": -100.0},
        {"sigma": -0.3},
        {"sigma": math.nan},
        {"sigma": math.inf},
        {"r": -0.01},
        {"r": math.nan},
        {"dS": math.nan},
        {"days": 0.0},
        {"days": math.nan},
    ],
)
def test_bad_scalars_settle_nothing(kw: dict[str, float]) -> None:
    assert mask(True, [110.0, 110.0], [T14, T14]) == [True, True]  # settled with good scalars
    assert mask(False, [95.0, 95.0], [T14, T14]) == [True, True]
    assert mask(True, [110.0, 110.0], [T14, T14], **kw) == [False, False]
    assert mask(False, [95.0, 95.0], [T14, T14], **kw) == [False, False]


def test_bad_rows_are_not_settled_and_leave_the_others_alone() -> None:
    K = [110.0, math.nan, -110.0, 110.0, 110.0, 110.0, 110.0]
    T = [T14, T14, T14, 0.0, -T14, math.nan, T14]
    assert mask(True, K, T) == [True, False, False, False, False, False, True]


def test_no_rows_settle_nothing_and_bad_shapes_raise() -> None:
    assert mask(True, [], []) == []
    with pytest.raises(ValueError, match="differ in length"):
        mask(True, [110.0, 110.0], [T14])
    with pytest.raises(ValueError, match="1-D"):
        qb.settled(True, S, R, SIG, FRAC, MIN_HALF, TICK, np.ones((2, 2)), np.ones((2, 2)), 0.0, 0.5,
                   *BAND, DELTA_PREFILTER_MARGIN, COVER, MARGINS)  # fmt: skip


@given(
    symbol=st.sampled_from(["SPY", "AAPL"]),
    day=st.sampled_from([d for d in range(30) if d % 7 < 5]),
    minute=st.integers(0, 389),
    spot=st.floats(20.0, 700.0),
    iv=st.one_of(st.sampled_from([0.05, 0.12, 0.3, 1.5]), st.floats(0.05, 1.5)),
    move_frac=st.floats(-0.001, 0.02),
    days=st.floats(0.01, 1.0),
    cover=st.sampled_from([2.0, 2.0, 1.0, 0.0]),
    call=st.booleans(),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=400, deadline=None)
def test_a_settled_contract_is_dropped_or_cannot_pay(
    symbol: str,
    day: int,
    minute: int,
    spot: float,
    iv: float,
    move_frac: float,
    days: float,
    cover: float,
    call: bool,
    seed: int,
) -> None:
    cfg = SignalsConfig()
    sc = cfg.selection
    r = sc.risk_free_rate
    now = ny_ns(dt.date(2024, 3, 4) + dt.timedelta(days=day), dt.time(9, 30)) + minute * 60 * 10**9
    book = ModelledChainBook(ModelSettings(), r, sc.dte_min, sc.dte_max)
    view = ModelledChainView(book, symbol, now, spot, iv)
    model = view.quote_model()
    assert model is not None or not view.expiry_list()
    if model is None:
        return
    rows = np.flatnonzero(view.is_call == call)
    uniq, codes = view.expiry_index()
    K = view.strike[rows]
    T = np.array([(e - now) / NS_PER_YEAR for e in uniq])[codes[rows]]
    dS = (1.0 if call else -1.0) * move_frac * spot
    bounds = (model.spot, model.rate, model.iv, model.half_spread_frac, model.min_half_spread, model.tick)
    thresholds = (sc.delta_min, sc.delta_max, DELTA_PREFILTER_MARGIN, cover, MARGINS)
    settled = qb.settled(call, *bounds, K, T, dS, days, *thresholds)
    # a row's answer does not depend on its neighbours (nor on the kernel's per-expiry reuse)
    perm = np.random.default_rng(seed).permutation(len(K))
    assert np.array_equal(qb.settled(call, *bounds, K[perm], T[perm], dS, days, *thresholds), settled[perm])
    assert qb.all_settled(call, *bounds, K, T, dS, days, *thresholds) == (bool(settled.all()) and len(K) > 0)
    event(f"settled share {int(10 * settled.mean()) * 10}%")
    bid, ask = view.bid_ask(rows)
    checked = 0
    for c in np.flatnonzero(settled).tolist():
        b, a = float(bid[c]), float(ask[c])
        mid = 0.5 * (b + a)
        if not (b > 0.0 and a >= b and mid >= sc.min_premium and (a - b) / mid <= sc.max_spread_frac):
            continue  # dropped by the liquidity/spread filter
        k, t = K[c : c + 1], T[c : c + 1]
        iv_eu = float(np.asarray(opt.implied_vol(np.array([mid]), spot, k, t, r, 0.0, call), float)[0])
        assert math.isfinite(iv_eu), "a settled contract's European IV exists"
        d_eu = abs(float(opt.bs_greeks(spot, k, t, r, np.array([iv_eu]), 0.0, call)["delta"][0]))
        if not (sc.delta_min - DELTA_PREFILTER_MARGIN <= d_eu <= sc.delta_max + DELTA_PREFILTER_MARGIN):
            continue  # dropped by the prefilter
        iv_am = float(opt.implied_vol(mid, spot, float(k[0]), float(t[0]), r, 0.0, call, style="american"))
        if not (math.isfinite(iv_am) and iv_am > 0):
            continue  # no American IV
        g = opt.trader_units(opt.bs_greeks(spot, k, t, r, np.array([iv_am]), 0.0, call))
        delta, gamma, theta = float(g["delta"][0]), float(g["gamma"][0]), float(g["theta"][0])
        if not (sc.delta_min <= abs(delta) <= sc.delta_max):
            continue  # outside the band
        dv = delta * dS + 0.5 * gamma * dS * dS + theta * 365.0 / SESSIONS_PER_YEAR * days
        assert dv <= cover * 0.5 * (a - b), (c, dv, a - b)
        checked += 1
    event(f"in the band, held to the levels' first test: {'some' if checked else 'none'}")
