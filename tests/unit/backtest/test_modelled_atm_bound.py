"""The modelled chain's ATM-IV lower bound (:func:`atm_iv_exceeds`, through the book's
``atm_iv_exceeds``) is sound: whenever it claims the ATM IV is above a level, the read
(``traded_atm_iv`` of the book's view: the view made, its grid read, every IV solved) is NaN or
above that level. Random states over American (SPY, AAPL) and European (SPX) roots, spots on a half
strike (two nearest strikes), IVs so low the ATM contracts may lose their bid, and levels around the
read's own answer: the bound is conservative by ~3x at the edge of its claims, so this catches a
bound that overstates the price gain 10x (checked), not a small slip. The sharp check is of the step
a slip would sit in, the least vega: below QuantLib's Black-Scholes vega of every strike, time and
vol it covers (random corners and interior points). Hand-derived cases: what proves nothing, and
that the usual case is proved.
"""

from __future__ import annotations

import math

import pytest
import QuantLib as ql
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aiots.services.backtest.modelled import ModelledChainBook
from aiots.services.backtest.modelled_atm_bound import atm_iv_exceeds, least_vega
from aiots.services.signals.atm_iv import book_atm_iv_exceeds, traded_atm_iv
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import ChainBook
from tests.unit.backtest.modelled_states import AGE_NS, DTE_MAX, DTE_MIN, IVS, RATE, State, book, states

# a typical SPY state: spot $500, 2-21 days, 4.5 %, ticks of a cent, 3 % half-spread, a cent at least
TYPICAL = {
    "spot": 500.0,
    "sigma": 0.2,
    "rate": RATE,
    "dividend_yield": 0.0,
    "step": 1.0,
    "t_lo": 2 / 365,
    "t_hi": 21 / 365,
    "tick": 0.01,
    "tick_eps": 1e-9,
    "price_scale": 1e6,
    "half_frac": 0.03,
    "min_half": 0.01,
}


def config() -> SignalsConfig:
    cfg = SignalsConfig()
    sel = cfg.selection.model_copy(update={"dte_min": DTE_MIN, "dte_max": DTE_MAX, "risk_free_rate": RATE})
    return cfg.model_copy(update={"selection": sel})


@settings(max_examples=600, deadline=None)
@given(states(ivs=(0.01, 0.03, *IVS)), st.floats(0.3, 1.2), st.data())
def test_a_claimed_bound_holds_for_the_read(state: State, frac: float, data: st.DataObject) -> None:
    symbol, now, spot, iv = state
    cfg = config()
    b: ModelledChainBook = book()
    b.set_state(symbol, now, spot, iv)
    read = traded_atm_iv(b.view(symbol), spot, now, cfg, 0.0, AGE_NS)
    # levels far from and right at the answer, between it and the model's IV (where the quotes'
    # rounding moves the read off sigma: a bound without its margins claims there), and below sigma
    ref = read if math.isfinite(read) else iv
    how = data.draw(st.sampled_from(["far", "at", "between", "below sigma"]))
    if how == "far":
        level = ref * frac
    elif how == "at":
        level = ref * (1.0 + data.draw(st.floats(-1e-3, 1e-3)))
    elif how == "between":
        level = min(ref, iv) + data.draw(st.floats(0.0, 1.0)) * abs(ref - iv)
    else:
        level = iv * data.draw(st.floats(0.5, 0.9999))
    claim = book_atm_iv_exceeds(book_with(symbol, now, spot, iv), symbol, spot, now, cfg, 0.0, AGE_NS, level)
    event(f"claimed={claim}, read finite={math.isfinite(read)}")
    if claim:
        assert math.isnan(read) or read > level, (read, level)


def book_with(symbol: str, now: int, spot: float, iv: float) -> ModelledChainBook:
    """A second book in the same state (the claim must not depend on the first book's reads)."""
    b = book()
    b.set_state(symbol, now, spot, iv)
    return b


def test_the_usual_case_is_proved_and_matches_the_read() -> None:
    """SPY at $500 priced at 20 %: a level of 12 % is provably below its ATM IV (the read: ~20 %)."""
    cfg = config()
    b = book()
    now = 1_710_250_200_000_000_000  # 2024-03-12 13:30 UTC (09:30 New York)
    b.set_state("SPY", now, 500.0, 0.2)
    assert book_atm_iv_exceeds(b, "SPY", 500.0, now, cfg, 0.0, AGE_NS, 0.12)
    read = traded_atm_iv(b.view("SPY"), 500.0, now, cfg, 0.0, AGE_NS)
    assert 0.19 < read < 0.21  # the model's IV, up to the quotes' rounding and early exercise


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"sigma": 0.12}, "the level is not below the model's IV"),
        ({"sigma": 0.1201}, "too close: the quote's rounding can move the IV by more"),
        ({"spot": math.nan}, "a NaN"),
        ({"t_lo": 0.0}, "an expiry now: no time value to bound"),
        ({"t_lo": 0.1, "t_hi": 0.05}, "an empty window"),
        ({"step": 600.0}, "a strike step above the spot"),
        ({"dividend_yield": -0.01}, "a negative yield"),
        ({"half_frac": 1.0}, "a half-spread of the whole price: no bid"),
        ({"min_half": 1e6}, "a half-spread far above any premium: no bid"),
        ({"tick": 0.0}, "no tick"),
    ],
)
def test_what_proves_nothing(change: dict[str, float], why: str) -> None:
    args = {**TYPICAL, **change}
    assert not atm_iv_exceeds(0.12, **args), why
    assert atm_iv_exceeds(0.12, **TYPICAL)  # the same level on the typical state: proved


def test_a_deep_out_of_the_money_level_needs_a_vega() -> None:
    """Hand-derived: at 20 % and 2-21 days, the least vega over the window's half-step strikes is
    S e^{-q t} sqrt(2/365) phi(d) with |d| <= 0.002/(0.12 x 0.074) + 0.045 x 0.24/0.12 + 0.1 x 0.24
    ~ 0.34, i.e. ~13.9 $/vol: a level 1e-4 below sigma gains ~0.0014 $, under half a tick + a
    millionth (0.005001 $): no proof. 0.01 below gains ~0.139 $: proved."""
    assert not atm_iv_exceeds(0.2 - 1e-4, **TYPICAL)
    assert atm_iv_exceeds(0.2 - 1e-2, **TYPICAL)


def test_live_books_never_claim() -> None:
    assert not ChainBook().atm_iv_exceeds("SPY", 500.0, 0, RATE, 0.0, 0.0, 1e18, AGE_NS, 1e-9)


def test_a_book_read_at_another_time_or_spot_claims_nothing() -> None:
    cfg = config()
    b = book()
    now = 1_710_250_200_000_000_000
    b.set_state("SPY", now, 500.0, 0.2)
    assert book_atm_iv_exceeds(b, "SPY", 500.0, now, cfg, 0.0, AGE_NS, 0.12)
    assert not book_atm_iv_exceeds(b, "SPY", 500.5, now, cfg, 0.0, AGE_NS, 0.12)  # another spot
    assert not book_atm_iv_exceeds(b, "SPY", 500.0, now + 60 * 10**9, cfg, 0.0, AGE_NS, 0.12)  # a minute on
    assert not book_atm_iv_exceeds(b, "SPY", 500.0, now, cfg, 0.01, AGE_NS, 0.12)  # solved at another yield
    assert not book_atm_iv_exceeds(b, "QQQ", 400.0, now, cfg, 0.0, AGE_NS, 0.12)  # no state


def ql_vega(spot: float, strike: float, t: float, r: float, q: float, vol: float) -> float:
    """QuantLib's analytic European vega (dollars per unit vol; a call's, equal to a put's)."""
    payoff = ql.PlainVanillaPayoff(ql.Option.Call, strike)
    stdev = vol * math.sqrt(t)
    calc = ql.BlackCalculator(payoff, spot * math.exp((r - q) * t), stdev, math.exp(-r * t))
    return calc.vega(t)


@settings(max_examples=400, deadline=None)
@given(
    st.floats(5.0, 6000.0),
    st.floats(0.02, 2.0),
    st.floats(0.05, 0.999),
    st.floats(-0.02, 0.1),
    st.floats(0.0, 0.05),
    st.floats(1 / 365, 60 / 365),
    st.floats(1.0, 10.0),
    st.floats(-1.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_least_vega_is_below_quantlibs_vega_everywhere_it_covers(
    spot: float, sigma: float, frac: float, r: float, q: float, t_lo: float, widen: float, k: float, u: float, v: float
) -> None:
    level, step = sigma * frac, min(spot / 3, 0.5 if spot < 25 else 1.0 if spot < 1000 else 5.0)
    t_hi = t_lo * widen
    bound = least_vega(level, spot, sigma, r, q, step, t_lo, t_hi)
    # a point of the covered box (strike, time, vol); its corners come up as u, v, k reach 0/+-1
    strike = spot + k * 0.5 * step
    t, vol = t_lo + u * (t_hi - t_lo), level + v * (sigma - level)
    assert bound <= ql_vega(spot, strike, t, r, q, vol) * (1 + 1e-12)
