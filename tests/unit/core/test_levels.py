"""The level kernel (aiots.core.levels) against independent oracles.

* The race and reach probabilities and the Taylor move against mpmath at 50 digits on the same
  float inputs. Tolerance: 1e-12 relative, or the problem's own conditioning where that is larger:
  the kernel's answer is the exact one for inputs moved by a few ulps (a ratio rounded before its
  log, a product before a difference), so its error is up to ~``COND_ULPS`` eps x the condition
  number sum_i |x_i d ln f / d x_i| (mpmath's derivative); plus an absolute floor for results that
  pass through subnormals.
* Hand-derived contracts (a valid one worked through by hand; a stop at exactly 0; a risk over the
  budget; reward:risk under the minimum; a put; a stop above the cost).
* The batch against a plain-Python restatement of the rules (Python floats, ``min``/``max``, ``//``
  and ``int``, the element-wise functions for the three model pieces): bit for bit.
* NaN/inf anywhere never raises, and the invariants of ``valid`` hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aiots.core.execution import ExecutionModel
from aiots.core.levels import (
    contract_levels,
    exit_for_return,
    expected_value,
    move_for_option_change,
    race_probability,
    reach_probability,
)

mp.mp.dps = 50
EPS = 2.0**-52
REL = 1e-12
COND_ULPS = 8  # roundings per input the kernel's formulas can be charged with (each <= eps/2; generous)
# results near the subnormal range (below ~2.2e-308 the spacing is 2^-1074 ~ 4.9e-324) carry absolute
# rounding that no relative bound covers
ABS_FLOOR = 1e-300
FIELDS = (
    "valid",
    "target",
    "stop",
    "rr",
    "p_model",
    "p_stop",
    "gain",
    "loss",
    "cost",
    "flat",
    "risk_usd",
    "contracts",
    "ev_model_pct",
)


# --- mpmath oracles ---------------------------------------------------------------------------
def _mp_race(spot: Any, upper: Any, lower: Any, sigma: Any, mu: Any) -> Any:
    a, b = mp.log(upper / spot), mp.log(lower / spot)
    k = 2 * (mu - sigma * sigma / 2) / (sigma * sigma)
    if k == 0:
        return -b / (a - b)
    return (1 - mp.exp(-k * b)) / (mp.exp(-k * a) - mp.exp(-k * b))


def _mp_reach(spot: Any, level: Any, sigma: Any, years: Any, drift: Any) -> Any:
    a = mp.log(level / spot)
    m = -drift if a < 0 else drift
    a = abs(a)
    st_ = sigma * mp.sqrt(years)
    return mp.ncdf((m * years - a) / st_) + mp.exp(2 * m * a / (sigma * sigma)) * mp.ncdf((-m * years - a) / st_)


def _mp_move(delta: Any, gamma: Any, theta: Any, days: Any, dv: Any) -> Any:
    c = theta * days - dv
    disc = delta * delta - 2 * gamma * c
    sign = 1 if math.copysign(1.0, float(delta)) > 0 else -1
    return -2 * c / (delta + sign * mp.sqrt(disc))


def _condition(f: Callable[..., Any], xs: tuple[float, ...]) -> float:
    """sum_i |x_i d ln f / d x_i| at the float inputs (mpmath's numerical derivative)."""
    args = [mp.mpf(x) for x in xs]
    f0 = f(*args)
    total = mp.mpf(0)
    for i, x in enumerate(args):
        if x == 0:
            continue
        d = mp.diff(lambda t, i=i: f(*args[:i], t, *args[i + 1 :]), x)
        total += abs(x * d / f0)
    return float(total)


def _close(got: float, f: Callable[..., Any], xs: tuple[float, ...]) -> None:
    want = f(*(mp.mpf(x) for x in xs))
    tol = max(REL, COND_ULPS * EPS * _condition(f, xs)) * abs(want) + ABS_FLOOR
    assert abs(mp.mpf(got) - want) <= tol, (xs, got, float(want), float(abs(mp.mpf(got) - want) / abs(want)))


_spot = st.floats(20.0, 500.0)
_sigma = st.floats(0.05, 1.5)
_dist = st.floats(1e-3, 0.3)  # |ln(level / spot)|: at least 0.1 %, so ln of the rounded ratio is good to ~1e-13


@given(
    spot=_spot,
    up=_dist,
    down=_dist,
    sigma=_sigma,
    k=st.one_of(st.floats(1e-12, 1e-6), st.floats(1e-6, 3000.0)),
    sign=st.sampled_from((-1.0, 1.0)),
)
@settings(max_examples=300, deadline=None)
def test_race_probability_against_mpmath(
    spot: float, up: float, down: float, sigma: float, k: float, sign: float
) -> None:
    # drift k = 2 m / sigma^2 from nearly none (the driftless limit, no cancellation) to thousands
    # (the scale function's exponentials far beyond the double range)
    upper, lower = spot * math.exp(up), spot * math.exp(-down)
    mu = 0.5 * sigma * sigma * (1.0 + sign * k)
    _close(race_probability(spot, upper, lower, sigma, mu), _mp_race, (spot, upper, lower, sigma, mu))


@given(spot=_spot, up=_dist, down=_dist, sigma=_sigma)
@settings(max_examples=200, deadline=None)
def test_race_probability_driftless_against_mpmath(spot: float, up: float, down: float, sigma: float) -> None:
    upper, lower = spot * math.exp(up), spot * math.exp(-down)
    mu = 0.5 * sigma * sigma  # m = mu - sigma^2/2 is exactly 0 in floats: the log-distance ratio
    _close(race_probability(spot, upper, lower, sigma, mu), _mp_race, (spot, upper, lower, sigma, mu))


@given(
    spot=_spot,
    dist=_dist,
    side=st.sampled_from((-1.0, 1.0)),
    sigma=_sigma,
    years=st.floats(1e-6, 0.1),
    drift=st.floats(-3000.0, 3000.0),
)
@settings(max_examples=300, deadline=None)
def test_reach_probability_against_mpmath(
    spot: float, dist: float, side: float, sigma: float, years: float, drift: float
) -> None:
    # drifts whose mirror exponent 2 m a / sigma^2 passes e^x's range and whose N(z2) underflows
    level = spot * math.exp(side * dist)
    _close(reach_probability(spot, level, sigma, years, drift), _mp_reach, (spot, level, sigma, years, drift))


@given(
    delta=st.one_of(st.floats(-1.0, -0.01), st.floats(0.01, 1.0)),
    gamma=st.floats(-0.3, 0.3),
    theta=st.floats(-0.5, 0.1),
    days=st.floats(0.0, 2.0),
    dv=st.floats(-3.0, 3.0),
)
@settings(max_examples=300, deadline=None)
def test_move_for_option_change_against_mpmath(
    delta: float, gamma: float, theta: float, days: float, dv: float
) -> None:
    c = theta * days - dv
    disc = delta * delta - 2.0 * gamma * c
    x = move_for_option_change(delta, gamma, theta, days, dv)
    if disc < 0:
        assert math.isnan(x)
        return
    assume(c != 0.0 and disc > 1e-6 * delta * delta)  # away from the double root (ill-posed there)
    _close(x, _mp_move, (delta, gamma, theta, days, dv))


def test_probability_edges_by_hand() -> None:
    assert race_probability(100.0, 110.0, 100.0, 0.2, 0.1) == 0.0  # at the lower barrier
    assert race_probability(100.0, 100.0, 90.0, 0.2, 0.1) == 1.0  # at the upper one
    assert race_probability(100.0, 110.0, 90.0, 0.0, 0.1) == 1.0  # no volatility, inside the band
    assert reach_probability(100.0, 103.0, 0.25, 0.0) == 0.0  # no time
    assert reach_probability(100.0, 0.0, 0.25, 1.0) == 0.0  # a level at zero is never touched
    assert reach_probability(100.0, 100.0, 0.25, 1.0) == 1.0  # already there: N(0) + N(0)
    assert math.isnan(move_for_option_change(0.0, 0.0, 0.0, 1.0, 1.0))  # no delta, no gamma: no move
    assert move_for_option_change(0.5, 0.0, 0.0, 1.0, 1.0) == 2.0  # linear: dv / delta


@pytest.mark.parametrize(
    ("spot", "upper", "lower", "sigma", "mu"),
    [
        (100.0, 101.0, 90.0, 0.1, 80.0),  # e^{-k b} overflows: was NaN, is 1 to the last bit
        (100.0, 101.0, 90.0, 0.1, -80.0),  # e^{-k a} overflows: ~7e-70, not 0 or NaN
        (100.0, 105.0, 95.0, 0.2, 0.02 * (1.0 + 2e-9)),  # just off the driftless limit (was 3e-6 off)
    ],
)
def test_race_probability_at_extreme_drifts(spot: float, upper: float, lower: float, sigma: float, mu: float) -> None:
    got = race_probability(spot, upper, lower, sigma, mu)
    assert math.isfinite(got)
    _close(got, _mp_race, (spot, upper, lower, sigma, mu))


@pytest.mark.parametrize(
    ("spot", "level", "sigma", "years", "drift"),
    [
        (100.0, 101.0, 0.05, 1e-4, 100.0),  # mirror exponent ~796: the term is ~2 % of the answer
        (100.0, 106.86, 1.377, 1.665e-6, 2258.0),  # N(z2) below the doubles: the term is half the answer
    ],
)
def test_reach_probability_keeps_the_mirror_term(
    spot: float, level: float, sigma: float, years: float, drift: float
) -> None:
    _close(reach_probability(spot, level, sigma, years, drift), _mp_reach, (spot, level, sigma, years, drift))


def test_expected_value_by_hand() -> None:
    # target 60 %; the rest split 30 % stop / 10 % neither by the model; the horizon exit clipped to the gain
    assert expected_value(0.6, 0.6, 0.3, 0.10, 0.20, 0.02) == pytest.approx(0.6 * 0.10 - 0.3 * 0.20 + 0.1 * 0.02)
    assert expected_value(0.3, 0.6, 0.3, 0.10, 0.20, 5.0) == pytest.approx(
        0.3 * 0.10 - 0.7 * 0.75 * 0.20 + 0.7 * 0.25 * 0.10
    )
    assert type(expected_value(0.3, 0.6, 0.3, 0.10, 0.20, 5.0)) is float
    arr = expected_value(np.array([0.6, 0.3]), 0.6, 0.3, 0.10, 0.20, np.array([0.02, 5.0]))
    assert arr.shape == (2,) and arr[1] == expected_value(0.3, 0.6, 0.3, 0.10, 0.20, 5.0)


def test_exit_for_return_is_the_execution_models_rule() -> None:
    fee = 0.65 / 100
    assert exit_for_return(2.0, 10.0, fee) == pytest.approx((2.0 + fee) * 1.10 + fee, rel=1e-15)
    assert ExecutionModel().exit_for_return(2.0, 10.0) == exit_for_return(2.0, 10.0, fee)


# --- hand-derived contracts -----------------------------------------------------------------------
FEE = 0.65  # dollars per contract per fill
RULES: dict[str, Any] = dict(
    spot=100.0,
    move=2.0,
    trading_days=1.0,
    years=1.0 / 252,
    bullish=True,
    theta_days_per_year=365.0,
    sessions_per_year=252.0,
    noise_move=1.0,
    fee_per_contract=FEE,
    exit_fee_per_share=FEE / 100,
    spread_cover=2.0,
    target_min_pct=5.0,
    target_max_pct=10.0,
    target_capture=0.5,
    stop_spread_mult=2.0,
    stop_noise_mult=0.5,
    max_stop_pct=50.0,
    min_reward_risk=0.3,
    risk_per_trade_usd=100.0,
)


def _levels(
    bid: float,
    ask: float,
    delta: float,
    gamma: float = 0.0,
    theta: float = 0.0,
    iv: float = 0.3,
    mult: int = 100,
    **rules: Any,
) -> dict[str, Any]:
    r = {**RULES, **rules}
    r["log_drift"] = math.log((r["spot"] + r["move"]) / r["spot"]) / r["years"]
    out = contract_levels(
        np.array([bid]),
        np.array([ask]),
        np.array([mult], dtype=np.int64),
        np.array([iv]),
        np.array([delta]),
        np.array([gamma]),
        np.array([theta]),
        **r,
    )
    return {name: col[0] for name, col in zip(FIELDS, out, strict=True)}


def test_a_valid_call_worked_by_hand() -> None:
    # bid 1.00 / ask 1.10, delta 0.5, no gamma or theta: dv = 0.5 * 2 = 1.0 > 2 half-spreads (0.10)
    lv = _levels(1.00, 1.10, 0.5)
    fee = 0.0065
    cost = 1.10 + fee
    # net return of selling at 1.00 + 1.0 after fees ~80 %; half of it capped at 10 %
    target = (1.10 + fee) * 1.10 + fee
    stop = 1.10 - max(2.0 * 0.10, 0.5 * (0.5 * 1.0))  # noise 0.5: the stop 0.25 below the ask
    loss, gain = cost - (stop - fee), target - fee - cost
    assert lv["valid"]
    assert (lv["cost"], lv["target"], lv["stop"]) == pytest.approx((cost, target, stop), rel=1e-15)
    assert (lv["loss"], lv["gain"]) == pytest.approx((0.263, 0.11065), rel=1e-12)
    assert lv["rr"] == pytest.approx(0.11065 / 0.263, rel=1e-12)
    assert lv["risk_usd"] == pytest.approx(26.3, rel=1e-12) and lv["contracts"] == 3  # 100 // 26.3
    assert lv["flat"] == pytest.approx(1.00 - fee - cost, rel=1e-15)
    # the underlying moves: linear in delta (target - bid) / 0.5 up, (stop - bid) / 0.5 down
    hit, miss = 100.0 + (target - 1.00) / 0.5, 100.0 + (stop - 1.00) / 0.5
    years, drift = 1.0 / 252, math.log(1.02) * 252
    mu = drift + 0.5 * 0.09
    race = _mp_race(mp.mpf(100), mp.mpf(hit), mp.mpf(miss), mp.mpf(0.3), mp.mpf(mu))
    p_model = race * _mp_reach(mp.mpf(100), mp.mpf(hit), mp.mpf(0.3), mp.mpf(years), mp.mpf(drift))
    p_stop = (1 - race) * _mp_reach(mp.mpf(100), mp.mpf(miss), mp.mpf(0.3), mp.mpf(years), mp.mpf(drift))
    assert lv["p_model"] == pytest.approx(float(p_model), rel=1e-11)
    assert lv["p_stop"] == pytest.approx(float(p_stop), rel=1e-11)
    p_s = (1 - p_model) * min(1, p_stop / (1 - p_model))
    ev = p_model * gain - p_s * loss + (1 - p_model - p_s) * min(max(1.00 - fee - cost, -loss), gain)
    assert lv["ev_model_pct"] == pytest.approx(float(100 * ev / cost), rel=1e-10)


def test_a_stop_at_zero_is_invalid() -> None:
    # bid 0.50 / ask 1.00: two spreads (1.00) put the stop exactly at 0
    lv = _levels(0.50, 1.00, 0.5, move=4.0)
    assert lv["stop"] == 0.0 and not lv["valid"]
    assert lv["loss"] == pytest.approx(1.00 + 2 * 0.0065, rel=1e-15)
    assert math.isnan(lv["p_model"]) and math.isnan(lv["p_stop"]) and math.isnan(lv["ev_model_pct"])


def test_a_risk_over_the_budget_gives_no_contract() -> None:
    lv = _levels(1.00, 1.10, 0.5, risk_per_trade_usd=20.0)  # one contract risks $26.30
    assert lv["contracts"] == 0 and not lv["valid"] and math.isnan(lv["p_model"])
    assert _levels(1.00, 1.10, 0.5, risk_per_trade_usd=26.3 * 2)["contracts"] in (1, 2)  # floor at the edge


def test_reward_risk_under_the_minimum_is_invalid() -> None:
    lv = _levels(1.00, 1.10, 0.5, min_reward_risk=0.5)  # rr 0.4207
    assert not lv["valid"] and lv["rr"] == pytest.approx(0.11065 / 0.263, rel=1e-12)


def test_a_loss_beyond_the_stop_limit_is_invalid() -> None:
    assert not _levels(1.00, 1.10, 0.5, max_stop_pct=20.0)["valid"]  # the stop loses 23.8 % of the cost


def test_a_stop_above_the_cost_has_infinite_reward_risk() -> None:
    # no spread rule, no noise: the stop sits at the ask, above the cost after fees: loss < 0
    lv = _levels(1.00, 1.10, 0.5, stop_spread_mult=0.0, stop_noise_mult=0.0, fee_per_contract=0.0)
    assert lv["loss"] == 0.0 and lv["rr"] == math.inf and lv["contracts"] == 0 and not lv["valid"]


def test_a_put_races_down() -> None:
    # the mirror of the call: delta -0.5, the move -2: the target is below the spot, the stop above
    lv = _levels(1.00, 1.10, -0.5, move=-2.0, bullish=False)
    call = _levels(1.00, 1.10, 0.5)
    assert lv["valid"]
    assert (lv["target"], lv["stop"], lv["rr"], lv["contracts"]) == (
        call["target"],
        call["stop"],
        call["rr"],
        call["contracts"],
    )
    hit, miss = 100.0 - (lv["target"] - 1.00) / 0.5, 100.0 - (lv["stop"] - 1.00) / 0.5
    assert hit < 100.0 < miss
    years, drift = 1.0 / 252, math.log(0.98) * 252
    up_first = _mp_race(mp.mpf(100), mp.mpf(miss), mp.mpf(hit), mp.mpf(0.3), mp.mpf(drift + 0.045))
    p_model = (1 - up_first) * _mp_reach(mp.mpf(100), mp.mpf(hit), mp.mpf(0.3), mp.mpf(years), mp.mpf(drift))
    assert lv["p_model"] == pytest.approx(float(p_model), rel=1e-11)


# --- the batch against the rules restated in Python floats --------------------------------------
def _pymax(a: float, b: float) -> float:
    return max(a, b)  # Python's rule: b only where b > a


def _pymin(a: float, b: float) -> float:
    return min(a, b)


def _reference(
    bid: float, ask: float, mult: int, iv: float, delta: float, gamma: float, theta: float, r: dict[str, Any]
) -> tuple[Any, ...]:
    """One contract's levels from the rules in ``contract_levels``' docstring, in Python floats."""
    dS, td, spot = r["move"], r["trading_days"], r["spot"]
    fee = r["fee_per_contract"] / mult
    cost = ask + fee
    spread = ask - bid
    th = theta * r["theta_days_per_year"] / r["sessions_per_year"]
    dv = delta * dS + 0.5 * gamma * dS * dS + th * td
    ok = not (dv <= r["spread_cover"] * 0.5 * spread)
    net = 100.0 * ((bid + dv - fee) / cost - 1.0)
    t_pct = _pymin(r["target_max_pct"], _pymax(r["target_min_pct"], r["target_capture"] * net))
    xf = r["exit_fee_per_share"]
    target = (ask + xf) * (1.0 + t_pct / 100.0) + xf
    nm = r["noise_move"]
    stop = ask - _pymax(
        r["stop_spread_mult"] * spread, r["stop_noise_mult"] * (abs(delta) * nm + 0.5 * abs(gamma) * nm * nm)
    )
    ok = ok and not (stop <= 0)
    loss, gain = cost - (stop - fee), target - fee - cost
    ok = ok and not (100.0 * loss / cost > r["max_stop_pct"])
    rr = gain / loss if loss > 0 else math.inf
    ok = ok and not (rr < r["min_reward_risk"])
    x_up = float(move_for_option_change(delta, gamma, th, td, target - bid))
    x_dn = float(move_for_option_change(delta, gamma, th, td, stop - bid))
    ok = ok and math.isfinite(x_up) and math.isfinite(x_dn) and spot + dS > 0
    flat = bid + th * td - fee - cost
    risk = loss * mult
    contracts = 0
    if risk > 0:
        per = r["risk_per_trade_usd"] // risk
        contracts = int(per) if math.isfinite(per) else 0
    ok = ok and contracts >= 1
    p_model = p_stop = ev = math.nan
    if ok:
        hit, miss, ld, yrs = spot + x_up, spot + x_dn, r["log_drift"], r["years"]
        mu = ld + 0.5 * iv * iv
        if r["bullish"]:
            p_race = race_probability(spot, hit, miss, iv, mu) if hit > spot > miss else 0.0
        else:
            p_race = 1.0 - race_probability(spot, miss, hit, iv, mu) if miss > spot > hit > 0 else 0.0
        p_model = p_race * (reach_probability(spot, hit, iv, yrs, ld) if hit > 0 else 0.0)
        p_stop = (1.0 - p_race) * reach_probability(spot, miss, iv, yrs, ld) if miss > 0 else 1.0
        ev = 100.0 * expected_value(p_model, p_model, p_stop, gain, loss, flat) / cost
    return ok, target, stop, rr, p_model, p_stop, gain, loss, cost, flat, risk, contracts, ev


_price = st.floats(0.01, 20.0)
_contract = st.tuples(
    _price,
    st.floats(0.0, 0.5),
    st.sampled_from((100, 10)),
    st.floats(0.05, 1.5),
    st.floats(0.02, 0.98),
    st.floats(0.0, 0.2),
    st.floats(-0.5, 0.0),
)


@given(
    rows=st.lists(_contract, min_size=1, max_size=40),
    bullish=st.booleans(),
    move=st.floats(0.05, 8.0),
    minutes=st.floats(5.0, 390.0),
    atr=st.floats(0.01, 2.0),
    capture=st.floats(0.1, 1.0),
    budget=st.floats(10.0, 2000.0),
)
@settings(max_examples=300, deadline=None)
def test_the_batch_is_the_rules_in_python_floats_bit_for_bit(
    rows: list[tuple[float, float, int, float, float, float, float]],
    bullish: bool,
    move: float,
    minutes: float,
    atr: float,
    capture: float,
    budget: float,
) -> None:
    spot = 100.0
    bid = np.array([r[0] for r in rows])
    ask = bid + np.array([r[1] for r in rows])
    mult = np.array([r[2] for r in rows], dtype=np.int64)
    iv = np.array([r[3] for r in rows])
    sign = 1.0 if bullish else -1.0
    delta = sign * np.array([r[4] for r in rows])
    gamma, theta = np.array([r[5] for r in rows]), np.array([r[6] for r in rows])
    td = minutes / 390.0
    years = td / 252.0
    dS = sign * move
    r = {
        **RULES,
        "move": dS,
        "trading_days": td,
        "years": years,
        "bullish": bullish,
        "target_capture": capture,
        "noise_move": atr * math.sqrt(5.0),
        "risk_per_trade_usd": budget,
        "log_drift": math.log((spot + dS) / spot) / years,
    }
    got = contract_levels(bid, ask, mult, iv, delta, gamma, theta, **r)
    for i in range(len(rows)):
        want = _reference(
            float(bid[i]),
            float(ask[i]),
            int(mult[i]),
            float(iv[i]),
            float(delta[i]),
            float(gamma[i]),
            float(theta[i]),
            r,
        )
        for name, col, w in zip(FIELDS, got, want, strict=True):
            g = col[i].item()
            assert g == w or (isinstance(w, float) and math.isnan(w) and math.isnan(g)), (name, i, g, w)


def test_contracts_is_numpys_floor_divide() -> None:
    # risks whose quotient lands on or next to an integer: NumPy's floor_divide (the general path the
    # kernel replaces) and astype(int64) decide, e.g. 0.3 // 0.1 == 2
    bid = np.full(6, 1.00)
    ask = np.full(6, 1.10)
    one = contract_levels(
        bid,
        ask,
        np.full(6, 100, dtype=np.int64),
        np.full(6, 0.3),
        np.full(6, 0.5),
        np.zeros(6),
        np.zeros(6),
        **{**RULES, "log_drift": 5.0},
    )
    risk = float(one[10][0])
    for budget in (risk * 3, np.nextafter(risk * 3, 0.0), np.nextafter(risk * 3, np.inf), 0.3 / 0.1 * risk, risk):
        out = contract_levels(
            bid[:1],
            ask[:1],
            np.array([100]),
            np.array([0.3]),
            np.array([0.5]),
            np.zeros(1),
            np.zeros(1),
            **{**RULES, "log_drift": 5.0, "risk_per_trade_usd": float(budget)},
        )
        assert out[11][0] == np.floor_divide(float(budget), risk).astype(np.int64)


_any = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from((0.0, -0.0, math.nan, math.inf, -math.inf))
)


@given(
    cols=st.lists(st.tuples(*([_any] * 6), st.integers(-5, 1000)), min_size=1, max_size=8),
    scalars=st.lists(_any, min_size=20, max_size=20),
    bullish=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_nan_and_inf_inputs_never_raise(
    cols: list[tuple[float, float, float, float, float, float, int]], scalars: list[float], bullish: bool
) -> None:
    b, a, v, d, g, t = (np.array([c[k] for c in cols]) for k in range(6))
    m = np.array([c[6] for c in cols], dtype=np.int64)
    names = [k for k in RULES if k != "bullish"] + ["log_drift"]
    r: dict[str, Any] = dict(zip(names, scalars, strict=False))
    with np.errstate(all="raise"):  # and nothing in NumPy is left to warn
        out = contract_levels(b, a, m, v, d, g, t, bullish=bullish, **r)
    valid, stop, contracts, p_model = out[0], out[2], out[11], out[4]
    assert all(len(col) == len(cols) for col in out)
    assert np.isnan(p_model[~valid]).all() and np.isnan(out[12][~valid]).all()
    assert (contracts[valid] >= 1).all() and not (stop[valid] <= 0).any()
    for f in (race_probability, reach_probability, move_for_option_change):
        f(*scalars[:5])
    expected_value(*scalars[:6])


def test_bad_arguments_are_named() -> None:
    one = np.ones(1)
    with pytest.raises(ValueError, match="ask"):
        contract_levels(
            one,
            np.ones(2),
            np.ones(1, dtype=np.int64),
            one,
            one,
            one,
            one,
            bullish=True,
            **{k: 1.0 for k in RULES if k != "bullish"},
            log_drift=1.0,
        )
    with pytest.raises(TypeError, match="multiplier"):
        contract_levels(
            one, one, one, one, one, one, one, bullish=True, **{k: 1.0 for k in RULES if k != "bullish"}, log_drift=1.0
        )
