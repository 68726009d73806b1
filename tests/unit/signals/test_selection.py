"""Contract selection maths against hand-derived cases and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Direction, Idea, OptionQuote, Reason
from aiots.services.signals.selection import (
    NS_PER_DAY,
    ContractSelector,
    move_for_option_change,
    race_probability,
    reach_probability,
)


def test_race_probability_driftless_is_the_log_distance_ratio() -> None:
    # Zero drift in log space (mu = sigma^2/2): P(up first) = -b / (a - b), a=ln(U/S), b=ln(L/S).
    s, u, lo, sig = 100.0, 110.0, 95.0, 0.3
    a, b = math.log(u / s), math.log(lo / s)
    assert race_probability(s, u, lo, sig, 0.5 * sig * sig) == pytest.approx(-b / (a - b), rel=1e-12)


def test_race_probability_symmetric_barriers_favour_the_drift() -> None:
    up = race_probability(100.0, 105.0, 100.0 / 1.05, 0.2, 0.5)
    down = race_probability(100.0, 105.0, 100.0 / 1.05, 0.2, -0.5)
    assert up > 0.5 > down


def test_race_probability_matches_monte_carlo() -> None:
    # Independent check: simulate the log-price with drift m = mu - sigma^2/2 in small steps.
    rng = np.random.default_rng(3)
    s, u, lo, sig, mu = 100.0, 104.0, 97.0, 0.4, 0.8
    m, dt, n = mu - 0.5 * sig * sig, 1.0 / (252 * 390 * 4), 4000
    x = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    up = np.zeros(n, dtype=bool)
    a, b = math.log(u / s), math.log(lo / s)
    for _ in range(200_000):
        x[~done] += m * dt + sig * math.sqrt(dt) * rng.standard_normal((~done).sum())
        hit_up = ~done & (x >= a)
        hit_dn = ~done & (x <= b)
        up |= hit_up
        done |= hit_up | hit_dn
        if done.all():
            break
    assert up.mean() == pytest.approx(race_probability(s, u, lo, sig, mu), abs=0.03)


def test_reach_probability_reflection_principle() -> None:
    # P(max_{t<=T} W >= a) = 2 (1 - N(a / (sigma sqrt T))) for driftless Brownian motion.
    s, level, sig, t = 100.0, 103.0, 0.25, 10 / 365
    d = math.log(level / s) / (sig * math.sqrt(t))
    expect = 2.0 * 0.5 * math.erfc(d / math.sqrt(2.0))
    assert reach_probability(s, level, sig, t) == pytest.approx(expect, rel=1e-12)
    assert reach_probability(s, level, sig, 0.0) == 0.0


@given(
    delta=st.floats(0.05, 0.95),
    gamma=st.floats(0.0, 0.2),
    theta=st.floats(-0.5, 0.0),
    days=st.floats(0.0, 2.0),
    dv=st.floats(-2.0, 2.0),
)
@settings(max_examples=200, deadline=None)
def test_move_for_option_change_solves_the_taylor_model(
    delta: float, gamma: float, theta: float, days: float, dv: float
) -> None:
    x = move_for_option_change(delta, gamma, theta, days, dv)
    if math.isfinite(x):
        assert delta * x + 0.5 * gamma * x * x + theta * days == pytest.approx(dv, abs=1e-9)


def _chain(spot: float, now_ns: int, iv: float = 0.3, r: float = 0.045) -> list[OptionQuote]:
    """A synthetic chain priced with the core's American pricer (bid/ask = price -/+ 1%)."""
    out = []
    exp_ns = now_ns + int(10 * NS_PER_DAY)
    T = 10 / 365
    for k in np.arange(spot * 0.9, spot * 1.1, 1.0):
        for is_call in (True, False):
            p = float(opt.american_price(spot, k, T, r, iv, 0.0, is_call))
            if p < 0.05:
                continue
            out.append(
                OptionQuote(
                    occ_symbol=f"TEST  250101{'C' if is_call else 'P'}{int(k * 1000):08d}",
                    underlying="AAPL",
                    expiry="2025-01-01",
                    expiry_ns=exp_ns,
                    strike=float(k),
                    is_call=is_call,
                    bid=round(p * 0.99, 4),
                    ask=round(p * 1.01, 4),
                    volume=500,
                    open_interest=2000,
                    ts_ns=now_ns,
                )
            )
    return out


def _idea(direction: Direction, move: float, spot: float = 100.0) -> Idea:
    return Idea(
        symbol="AAPL",
        strategy="momentum_breakout",
        direction=direction,
        underlying_price=spot,
        projected_move=move,
        horizon_ns=int(60 * 60e9),
        evidence=0.7,
        reasons=(Reason("x", 1.0, 0.5, "test"),),
    )


@pytest.mark.parametrize("direction,move", [(Direction.BULLISH, 3.0), (Direction.BEARISH, -3.0)])
def test_selection_levels_respect_the_rules(direction: Direction, move: float) -> None:
    cfg = SignalsConfig()
    now = 1_700_000_000 * 10**9
    sel = ContractSelector().select(_idea(direction, move), _chain(100.0, now), now, cfg)
    assert sel is not None
    q = sel.quote
    assert q.is_call == (direction is Direction.BULLISH)
    sc = cfg.selection
    assert sc.delta_min <= abs(sel.greeks.delta) <= sc.delta_max
    gain = 100 * (sel.target / sel.entry - 1)
    assert sc.target_min_pct - 1e-6 <= gain <= sc.target_max_pct + 1e-6
    assert sel.reward_risk >= sc.min_reward_risk - 1e-6
    assert sel.stop < sel.entry == pytest.approx(q.mid)
    assert 0.0 <= sel.confidence <= 1.0
    # IV recovered from the American prices the chain was built with (mid = American price).
    assert sel.iv == pytest.approx(0.3, abs=2e-3)


def test_selection_skips_rich_premium_and_unpayable_moves() -> None:
    cfg = SignalsConfig()
    now = 1_700_000_000 * 10**9
    chain = _chain(100.0, now)
    idea = _idea(Direction.BULLISH, 3.0)
    assert ContractSelector().select(idea, chain, now, cfg, iv_rank=95.0) is None
    assert ContractSelector().select(_idea(Direction.BULLISH, 0.01), chain, now, cfg) is None
    assert ContractSelector().select(idea, [], now, cfg) is None


def test_selection_is_deterministic() -> None:
    cfg = SignalsConfig()
    now = 1_700_000_000 * 10**9
    chain = _chain(100.0, now)
    a = ContractSelector().select(_idea(Direction.BULLISH, 3.0), chain, now, cfg)
    b = ContractSelector().select(_idea(Direction.BULLISH, 3.0), list(reversed(chain)), now, cfg)
    assert a is not None and b is not None and a.quote.occ_symbol == b.quote.occ_symbol
