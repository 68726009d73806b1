"""Contract selection maths against hand-derived cases and closed forms, and the executable-level
rules on hand-built chains: entry at the ask, target/stop on the bid after fees, the stop at least
two spreads and one noise unit away, stale/one-sided/thin quotes refused, event risk skipped, EV > 0."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.core.conventions import NS_PER_MIN, NY, datetime_to_ns
from aiots.core.execution import ExecutionModel
from aiots.core.levels import expected_value, move_for_option_change, race_probability, reach_probability
from aiots.services.signals.calibration import Calibrator
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Direction, Idea, OptionQuote, Reason
from aiots.services.signals.selection import NS_PER_DAY, ContractSelector


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


def test_expected_value_by_hand() -> None:
    # target 60 %, stop: the model split the other 40 % as 30 % stop / 10 % neither; horizon value 0.02
    ev = expected_value(0.6, 0.6, 0.3, gain=0.10, loss=0.20, at_horizon=0.02)
    assert ev == pytest.approx(0.6 * 0.10 - 0.3 * 0.20 + 0.1 * 0.02)
    # a calibrated 0.3 keeps the model's 3:1 stop:neither split of the rest
    ev = expected_value(0.3, 0.6, 0.3, gain=0.10, loss=0.20, at_horizon=5.0)  # horizon value clipped to the gain
    assert ev == pytest.approx(0.3 * 0.10 - 0.7 * 0.75 * 0.20 + 0.7 * 0.25 * 0.10)


def test_reach_probability_with_drift_matches_monte_carlo() -> None:
    # Independent check: simulated Brownian motion with drift, barrier 2 % up over 1/52 year.
    rng = np.random.default_rng(7)
    s, level, sig, t, m = 100.0, 102.0, 0.3, 1 / 52, 0.8
    n, steps = 20_000, 400
    dt = t / steps
    x = np.cumsum(m * dt + sig * math.sqrt(dt) * rng.standard_normal((n, steps)), axis=1)
    hit = (x.max(axis=1) >= math.log(level / s)).mean()
    # discrete monitoring misses crossings between steps: shift the barrier by 0.5826 sigma sqrt(dt)
    # (Broadie-Glasserman-Kou continuity correction) to compare with the continuous formula
    shifted = level * math.exp(0.5826 * sig * math.sqrt(dt))
    assert reach_probability(s, shifted, sig, t, m) == pytest.approx(hit, abs=0.01)
    # and downward barriers mirror it
    assert reach_probability(s, s * s / level, sig, t, -m) == pytest.approx(reach_probability(s, level, sig, t, m))


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


# 10:00 ET on a regular session (Tuesday 2023-11-14)
NOW = datetime_to_ns(__import__("datetime").datetime(2023, 11, 14, 10, 0, tzinfo=NY))


def _chain(
    spot: float, now_ns: int, iv: float = 0.3, r: float = 0.045, days: float = 10, tag: str = "250101"
) -> list[OptionQuote]:
    """A synthetic chain priced with the core's American pricer (bid/ask = price -/+ 1%)."""
    out = []
    exp_ns = now_ns + int(days * NS_PER_DAY)
    T = days / 365
    for k in np.arange(spot * 0.9, spot * 1.1, 1.0):
        for is_call in (True, False):
            p = float(opt.american_price(spot, k, T, r, iv, 0.0, is_call))
            if p < 0.05:
                continue
            out.append(
                OptionQuote(
                    occ_symbol=f"TEST  {tag}{'C' if is_call else 'P'}{int(k * 1000):08d}",
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
        atr=0.12,  # a 1-minute ATR of a $100 stock
    )


FEE = 0.65 / 100  # dollars per share per fill (the default execution model)


@pytest.mark.parametrize("direction,move", [(Direction.BULLISH, 3.0), (Direction.BEARISH, -3.0)])
def test_selection_levels_are_executable(direction: Direction, move: float) -> None:
    cfg = SignalsConfig()
    sel = ContractSelector().select(_idea(direction, move), _chain(100.0, NOW), NOW, cfg)
    assert sel is not None
    q = sel.quote
    assert q.is_call == (direction is Direction.BULLISH)
    sc = cfg.selection
    assert sc.delta_min <= abs(sel.greeks.delta) <= sc.delta_max
    assert sel.entry == q.ask  # bought at the ask
    # the target is a bid price returning 5-10 % after fees on both legs
    net = 100 * ((sel.target - FEE) / (sel.entry + FEE) - 1)
    assert sc.target_min_pct - 1e-6 <= net <= sc.target_max_pct + 1e-6
    # the stop is at least two spreads below the entry
    assert sel.entry - sel.stop >= 2 * (q.ask - q.bid) - 1e-12
    loss = (sel.entry + FEE) - (sel.stop - FEE)
    assert sel.reward_risk == pytest.approx((sel.target - FEE - sel.entry - FEE) / loss)
    assert 100 * loss / (sel.entry + FEE) <= sc.max_stop_pct + 1e-9
    assert 0.0 <= sel.confidence <= 1.0 and sel.expected_return_pct > 0
    # expected value after costs is bounded by the all-target and all-stop cases
    gain = sel.target - FEE - sel.entry - FEE
    assert -loss < sel.expected_return_pct / 100 * (sel.entry + FEE) < gain
    assert sel.suggested_contracts == int(cfg.sizing.risk_per_trade_usd // (loss * 100)) >= 1
    # IV recovered from the American prices the chain was built with (mid = American price).
    assert sel.iv == pytest.approx(0.3, abs=2e-3)


def test_selection_skips_rich_premium_and_unpayable_moves() -> None:
    cfg = SignalsConfig()
    chain = _chain(100.0, NOW)
    idea = _idea(Direction.BULLISH, 3.0)
    assert ContractSelector().select(idea, chain, NOW, cfg, iv_rank=95.0) is None
    assert ContractSelector().select(_idea(Direction.BULLISH, 0.01), chain, NOW, cfg) is None
    assert ContractSelector().select(idea, [], NOW, cfg) is None


def test_selection_is_deterministic() -> None:
    cfg = SignalsConfig()
    chain = _chain(100.0, NOW)
    a = ContractSelector().select(_idea(Direction.BULLISH, 3.0), chain, NOW, cfg)
    b = ContractSelector().select(_idea(Direction.BULLISH, 3.0), list(reversed(chain)), NOW, cfg)
    assert a is not None and b is not None and a.quote.occ_symbol == b.quote.occ_symbol


def test_stale_one_sided_and_thin_quotes_are_never_used() -> None:
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    chain = _chain(100.0, NOW)
    old = [replace(q, ts_ns=NOW - 61 * 10**9) for q in chain]  # older than the 60 s limit
    sel = ContractSelector()
    assert sel.select(idea, old, NOW, cfg) is None and "no fresh" in sel.last_skip
    no_bid = [replace(q, bid=0.0) for q in chain]
    assert ContractSelector().select(idea, no_bid, NOW, cfg) is None
    thin = [replace(q, ask_size=0.5, bid_size=10) for q in chain]  # under min_quote_size = 1 contract
    assert ContractSelector().select(idea, thin, NOW, cfg) is None
    fresh_enough = [replace(q, ts_ns=NOW - 59 * 10**9) for q in chain]
    assert ContractSelector().select(idea, fresh_enough, NOW, cfg) is not None


def test_front_expiry_iv_kink_is_event_risk() -> None:
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    front = _chain(100.0, NOW, iv=0.69, days=3, tag="231117")  # an earnings week
    nxt = _chain(100.0, NOW, iv=0.30, days=10, tag="231124")
    sel = ContractSelector()
    assert sel.select(idea, front + nxt, NOW, cfg) is None
    assert sel.last_skip.startswith("event risk") and "2.30x" in sel.last_skip
    calm = _chain(100.0, NOW, iv=0.32, days=3, tag="231117") + nxt
    assert sel.select(idea, calm, NOW, cfg) is not None


def test_a_same_day_front_expiry_is_not_event_risk() -> None:
    # GOOG 2015-12-24: the 0DTE weekly quoted 0.33-0.41 ATM against 0.16 for the next week
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    same_day = _chain(100.0, NOW, iv=0.40, days=0.2, tag="231114")
    week = _chain(100.0, NOW, iv=0.16, days=7, tag="231121")
    nxt = _chain(100.0, NOW, iv=0.17, days=14, tag="231128")
    sel = ContractSelector()
    sel.select(idea, same_day + week + nxt, NOW, cfg)
    assert not sel.last_skip.startswith("event risk")


def test_unknown_sizes_pass_the_size_filter() -> None:
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    chain = _chain(100.0, NOW)
    for unknown in (0.0, math.nan):
        sized = [replace(q, ask_size=unknown, bid_size=unknown) for q in chain]
        assert ContractSelector().select(idea, sized, NOW, cfg) is not None


def test_ev_negative_ideas_are_suppressed() -> None:
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    chain = _chain(100.0, NOW)
    assert ContractSelector().select(idea, chain, NOW, cfg) is not None
    # a calibration that says targets are rarely reached: EV after costs turns negative
    pessimist = Calibrator(intercept=-4.0, logit_p_model=0.0, evidence=0.0, n=100)
    assert ContractSelector(calibrator=pessimist).select(idea, chain, NOW, cfg) is None


def test_the_contract_is_picked_at_the_model_probability_and_only_then_gated() -> None:
    """The calibration was fitted on the contracts picked by their EV at p_model; picking by the
    calibrated EV would trade where the calibration errs high. A calibration that reverses the
    model's order must not change which contract is picked, only whether it passes."""
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    chain = _chain(100.0, NOW) + _chain(100.0, NOW, days=20, tag="250111")  # two expiries
    chosen = ContractSelector().select(idea, chain, NOW, cfg)
    assert chosen is not None
    # sigmoid(2 - logit(p_model)): the lower p_model, the higher the confidence (here the 20-day
    # contracts would have the best calibrated EV, the 10-day ones the best EV at p_model)
    reverser = Calibrator(intercept=2.0, logit_p_model=-1.0, evidence=0.0, n=100)
    picked = ContractSelector(calibrator=reverser).select(idea, chain, NOW, cfg)
    assert picked is not None and picked.quote.occ_symbol == chosen.quote.occ_symbol
    assert picked.confidence == pytest.approx(
        1.0 / (1.0 + math.exp(-(2.0 - math.log(chosen.p_model / (1 - chosen.p_model)))))
    )
    # gated: with min EV above the pick's calibrated EV the idea is dropped, not re-routed
    optimist = Calibrator(intercept=0.5, logit_p_model=1.0, evidence=0.0, n=100)
    best = ContractSelector(calibrator=optimist).select(idea, chain, NOW, cfg)
    assert best is not None and best.quote.occ_symbol == chosen.quote.occ_symbol
    strict = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"min_expected_value_pct": best.expected_return_pct})}
    )
    assert ContractSelector(calibrator=optimist).select(idea, chain, NOW, strict) is None


def test_theta_is_charged_in_trading_time() -> None:
    # 60 one-minute bars = 60/390 of a trading day: the old calendar-time charge was 60/1440 of a day
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    sel = ContractSelector().select(idea, _chain(100.0, NOW), NOW, cfg, horizon_end_ns=NOW + 60 * NS_PER_MIN)
    assert sel is not None
    theta_trading = sel.greeks.theta * 365 / 252 * 60 / 390
    theta_calendar = sel.greeks.theta * 60 / 1440
    assert theta_trading / theta_calendar == pytest.approx((365 / 252) * (1440 / 390))  # ~5.3x


def test_fees_come_from_the_execution_model() -> None:
    cfg = SignalsConfig()
    idea = _idea(Direction.BULLISH, 3.0)
    free = ContractSelector(ExecutionModel(fee_per_contract=0.0)).select(idea, _chain(100.0, NOW), NOW, cfg)
    paid = ContractSelector(ExecutionModel(fee_per_contract=0.65)).select(idea, _chain(100.0, NOW), NOW, cfg)
    assert free is not None and paid is not None
    if free.quote.occ_symbol == paid.quote.occ_symbol:
        assert paid.target > free.target  # the fee round trip raises the bid needed for the same return


# --- the array forms against the scalar definitions ---------------------------------------------
# The selector evaluates these over every candidate at once (the core's kernel, aiots.core.levels);
# here they are written once more in plain Python floats, term by term as the docstrings define
# them, and the arrays must agree element by element (to rounding).


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _race_def(spot: float, upper: float, lower: float, sigma: float, mu: float) -> float:
    if not (lower < spot < upper) or sigma <= 0:
        return 0.0 if spot <= lower else 1.0
    a, b = math.log(upper / spot), math.log(lower / spot)
    k = 2.0 * (mu - 0.5 * sigma * sigma) / (sigma * sigma)
    if abs(k) < 1e-9:
        return -b / (a - b)
    return (1.0 - math.exp(-k * b)) / (math.exp(-k * a) - math.exp(-k * b))


def _reach_def(spot: float, level: float, sigma: float, years: float, drift: float) -> float:
    if years <= 0 or sigma <= 0 or level <= 0:
        return 0.0
    a, m = math.log(level / spot), drift
    if a < 0:
        a, m = -a, -m
    st_ = sigma * math.sqrt(years)
    expo = 2.0 * m * a / (sigma * sigma)
    tail = math.exp(expo) * _ncdf((-m * years - a) / st_) if expo < 700 else 0.0
    return min(1.0, _ncdf((m * years - a) / st_) + tail)


def _ev_def(conf: float, p_model: float, p_stop: float, gain: float, loss: float, at_h: float) -> float:
    rest = max(0.0, 1.0 - p_model)
    share = min(1.0, p_stop / rest) if rest > 0 else 1.0
    p_t = min(max(conf, 0.0), 1.0)
    p_s = (1.0 - p_t) * share
    return p_t * gain - p_s * loss + (1.0 - p_t - p_s) * min(max(at_h, -loss), gain)


def _move_def(delta: float, gamma: float, theta: float, days: float, dv: float) -> float:
    c = theta * days - dv
    disc = delta * delta - 2.0 * gamma * c
    if disc < 0:
        return math.nan
    denom = delta + math.copysign(math.sqrt(disc), delta)
    return -2.0 * c / denom if denom != 0 else math.nan


def _agree(got: np.ndarray, want: list[float], atol: float = 1e-300) -> None:
    w = np.array(want)
    assert got.shape == w.shape
    assert np.array_equal(np.isnan(got), np.isnan(w))
    assert np.allclose(got, w, rtol=1e-12, atol=atol, equal_nan=True)


# A first-passage tail exp(2ma/s^2) N(.) can scale a subnormal N(.) (~1e-311, a few significant bits)
# by up to e^700: libm's and SciPy's erfc then differ by up to ~1e-19 absolute (e.g. 4.9e-224 vs
# 9.1e-224 at spot 40, level 153, sigma 0.1, drift 0.75); no decision can see a probability that small.
PROB_ATOL = 1e-15


# prices inside and outside the barriers, no volatility too; ranges where the scalar exp doesn't overflow
_pos = st.floats(40.0, 160.0)
_sig = st.one_of(st.floats(-0.1, 0.0), st.floats(0.1, 2.0))
_row = st.tuples(_pos, _pos, _pos, _sig, st.floats(-2.0, 2.0), st.floats(-0.01, 0.2))


@given(rows=st.lists(_row, min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_probabilities_over_arrays_equal_the_scalar_definitions(
    rows: list[tuple[float, float, float, float, float, float]],
) -> None:
    s, up, lo, sig, mu, yrs = (np.array(c) for c in zip(*rows, strict=True))
    _agree(race_probability(s, up, lo, sig, mu), [_race_def(*r[:5]) for r in rows], PROB_ATOL)
    _agree(reach_probability(s, up, sig, yrs, mu), [_reach_def(r[0], r[1], r[3], r[5], r[4]) for r in rows], PROB_ATOL)
    _agree(
        reach_probability(s, lo, sig, yrs, -mu), [_reach_def(r[0], r[2], r[3], r[5], -r[4]) for r in rows], PROB_ATOL
    )


_p = st.floats(-0.2, 1.2)
_money = st.floats(-3.0, 3.0)


@given(rows=st.lists(st.tuples(_p, _p, _p, _money, _money, _money), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_expected_value_over_arrays_equals_the_scalar_definition(
    rows: list[tuple[float, float, float, float, float, float]],
) -> None:
    cols = [np.array(c) for c in zip(*rows, strict=True)]
    _agree(expected_value(*cols), [_ev_def(*r) for r in rows])


@given(
    rows=st.lists(
        st.tuples(st.floats(-1.0, 1.0), st.floats(-0.3, 0.3), st.floats(-0.5, 0.1), st.floats(0.0, 2.0), _money),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=300, deadline=None)
def test_move_for_option_change_over_arrays_equals_the_scalar_definition(
    rows: list[tuple[float, float, float, float, float]],
) -> None:
    cols = [np.array(c) for c in zip(*rows, strict=True)]
    _agree(move_for_option_change(*cols), [_move_def(*r) for r in rows])


@pytest.mark.parametrize("direction,move", [(Direction.BULLISH, 3.0), (Direction.BEARISH, -3.0)])
def test_levels_of_a_batch_equal_each_contract_alone(direction: Direction, move: float) -> None:
    # no candidate's levels depend on the others it is evaluated with
    cfg = SignalsConfig()
    chain = [q for q in _chain(100.0, NOW) if q.is_call == (direction is Direction.BULLISH)]
    bid, ask = np.array([q.bid for q in chain]), np.array([q.ask for q in chain])
    bid[::3] = 0.2 * ask[::3]  # every third contract too wide to pay its spread
    T = np.full(len(chain), 10 / 365)
    K = np.array([q.strike for q in chain])
    iv = np.asarray(
        opt.implied_vol(np.array([q.mid for q in chain]), 100.0, K, T, 0.045, 0.0, direction is Direction.BULLISH),
        float,
    )
    g = opt.trader_units(opt.bs_greeks(100.0, K, T, 0.045, iv, 0.0, direction is Direction.BULLISH))
    mult = np.full(len(chain), 100, dtype=np.int64)
    sel, idea = ContractSelector(), _idea(direction, move)
    args = (bid, ask, mult, idea, 100.0, iv, g["delta"], g["gamma"], g["theta"], 60.0, cfg)
    batch = sel._levels(*args)
    assert batch.valid.any() and not batch.valid.all()
    for i in range(len(chain)):
        one = sel._levels(*(a[i : i + 1] if isinstance(a, np.ndarray) else a for a in args))
        for name, col in batch._asdict().items():
            assert np.array_equal(getattr(one, name), col[i : i + 1], equal_nan=True), name


def test_atm_iv_kept_on_the_view_is_per_set_of_rows() -> None:
    # the ATM scan keeps each expiry's answer on the view; asking again over other rows (the ATM
    # strike left out) must give that subset's own answer, the one a fresh view gives
    from aiots.services.signals.atm_iv import scan_atm_ivs
    from aiots.services.signals.chainview import ChainView

    chain = _chain(100.0, NOW, iv=0.25)
    view = ChainView.from_quotes(chain)
    every = np.arange(len(chain))
    no_atm = np.array([i for i, q in enumerate(chain) if q.strike != 100.0])
    first = scan_atm_ivs(view, every, 100.0, NOW, 0.045, 0.0, NOW, None)
    again = scan_atm_ivs(view, every, 100.0, NOW, 0.045, 0.0, NOW, None)
    other = scan_atm_ivs(view, no_atm, 100.0, NOW, 0.045, 0.0, NOW, None)
    fresh = scan_atm_ivs(ChainView.from_quotes(chain), no_atm, 100.0, NOW, 0.045, 0.0, NOW, None)
    assert first == again and other == fresh and other != first
    assert len(view.atm_memo) == 2
