"""Contract selection: which option expresses an :class:`Idea`, with executable levels.

For each candidate (calls for bullish ideas, puts for bearish) inside the DTE window with enough
open interest and volume, a fresh two-sided uncrossed quote (age within the execution model's
limit), enough size on the ask and a tight enough spread:

1. IV from the mid with the core's solver for the contract's exercise style (from its root:
   European for SPX/SPXW/XSP/..., American otherwise); Greeks are closed-form BSM Greeks at that
   IV with the symbol's dividend yield, in trader units. |delta| must sit in the band.
2. Time is trading time: the horizon (already clipped before the session's close) is measured in
   session minutes, theta is charged per trading day (a year of 252 sessions), and the
   probabilities use sigma * sqrt(trading years).
3. Executable levels (dollars per share): entry at the **ask**; target and stop are prices of the
   **bid**, where a long holder sells. The target returns ``t`` % after fees on both legs, with
   t = clamp(target_capture x the net return of the projected move, 5 %, 10 %). The stop sits at least
   ``stop_spread_mult`` spreads and ``stop_noise_mult`` option-noise units (the underlying's ATR
   over ``noise_bars`` bars through delta and gamma) below the entry.
4. p_model: the probability that the underlying (lognormal at the contract's IV, drifting by the
   strategy's projected move over the horizon) reaches the level where the bid hits the target
   before the level where it hits the stop, times the probability of reaching it within the
   horizon (first passage with drift). Confidence is the calibrated probability
   (:mod:`aiots.services.signals.calibration`) from p_model and the strategy's evidence: the
   calibration, fitted walk-forward on backtest outcomes, is what tempers the strategy's claim.
5. Expected value after costs must be positive (``min_expected_value_pct``): the target at the
   calibrated probability, the stop at the model's share of the rest (first passage to the stop
   level), otherwise the horizon exit valued with no move (the bid after theta, less the costs);
   the net reward:risk must reach ``min_reward_risk`` and the loss at the stop ``max_stop_pct``.
6. Event risk: when the front expiry's ATM IV is ``event_iv_ratio`` x the next one's (an earnings
   week), buying premium pays the IV crush: the idea is skipped.

Deterministic: candidates are ranked by (expected value, -spread, OCC symbol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aiots.core import options as opt
from aiots.core.conventions import (
    MINUTES_PER_REGULAR_SESSION,
    NS_PER_DAY,
    NS_PER_YEAR,
    SESSIONS_PER_YEAR,
    calendar,
    exercise_style,
)
from aiots.core.execution import ExecutionModel
from aiots.services.signals.calibration import Calibrator, Context
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Direction, GreeksTU, Idea, OptionQuote

DELTA_PREFILTER_MARGIN = 0.05  # European vs American delta differ by far less for short-dated options


@dataclass(frozen=True)
class Selection:
    """The chosen contract and the levels derived for it (dollars per share)."""

    quote: OptionQuote
    entry: float
    target: float
    stop: float
    iv: float
    greeks: GreeksTU
    confidence: float
    expected_return_pct: float  # expected value after costs at ``confidence``, % of the premium paid
    reward_risk: float  # net gain at the target / net loss at the stop, fees included
    p_model: float
    risk_per_contract: float = 0.0  # dollars lost per contract at the stop, fees included
    suggested_contracts: int = 0
    style: str = "american"
    evidence: float = math.nan  # the strategy's 0..1 evidence (with the low-IV-rank bonus) fed to the calibration


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def move_for_option_change(delta: float, gamma: float, theta_day: float, days: float, dv: float) -> float:
    """Underlying move x (signed like delta) with delta*x + gamma*x^2/2 + theta*days = dv; NaN if none."""
    # 0.5*gamma*x^2 + delta*x + c = 0; the small root c/q is numerically stable (and exact as gamma -> 0).
    c = theta_day * days - dv
    disc = delta * delta - 2.0 * gamma * c
    if disc < 0:
        return math.nan
    denom = delta + math.copysign(math.sqrt(disc), delta)
    return -2.0 * c / denom if denom != 0 else math.nan


def race_probability(spot: float, upper: float, lower: float, sigma: float, mu: float) -> float:
    """P(log-price hits ln(upper) before ln(lower)) for drift ``mu - sigma^2/2`` (per year)."""
    if not (lower < spot < upper) or sigma <= 0:
        return 0.0 if spot <= lower else 1.0
    a, b = math.log(upper / spot), math.log(lower / spot)
    m = mu - 0.5 * sigma * sigma
    k = 2.0 * m / (sigma * sigma)
    if abs(k) < 1e-9:
        return -b / (a - b)
    # scale function of the diffusion: s(x) = exp(-k x)
    s0, sa, sb = 1.0, math.exp(-k * a), math.exp(-k * b)
    return (s0 - sb) / (sa - sb)


def reach_probability(spot: float, level: float, sigma: float, years: float, drift: float = 0.0) -> float:
    """P(the log-price, with log drift ``drift`` per year, touches ln(level/spot) within ``years``).

    First passage of Brownian motion with drift m to a barrier a > 0 (mirrored for a < 0):
    N((m t - a) / (s sqrt t)) + exp(2 m a / s^2) N((-m t - a) / (s sqrt t)); with m = 0 this is the
    reflection principle 2 N(-|a| / (s sqrt t)).
    """
    if years <= 0 or sigma <= 0 or level <= 0:
        return 0.0
    a = math.log(level / spot)
    m = drift
    if a < 0:
        a, m = -a, -m
    st = sigma * math.sqrt(years)
    expo = 2.0 * m * a / (sigma * sigma)
    tail = math.exp(expo) * _norm_cdf((-m * years - a) / st) if expo < 700 else 0.0
    return min(1.0, _norm_cdf((m * years - a) / st) + tail)


def expected_value(conf: float, p_model: float, p_stop: float, gain: float, loss: float, at_horizon: float) -> float:
    """Expected P&L per share: the target with probability ``conf`` (calibrated), the stop with the
    model's share of the rest, else the horizon exit worth ``at_horizon`` (clipped to [-loss, gain]).
    ``gain``/``loss`` are net of fees; all in dollars per share."""
    rest = max(0.0, 1.0 - p_model)
    stop_share = min(1.0, p_stop / rest) if rest > 0 else 1.0
    p_t = min(max(conf, 0.0), 1.0)
    p_s = (1.0 - p_t) * stop_share
    return p_t * gain - p_s * loss + (1.0 - p_t - p_s) * min(max(at_horizon, -loss), gain)


def atm_iv_by_expiry(
    chain: Sequence[OptionQuote],
    spot: float,
    now_ns: int,
    r: float,
    q: float,
    *,
    after_ns: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, float]]:
    """(expiry ns, ATM IV) per expiry expiring after ``after_ns`` (default: now), nearest first, at
    most ``limit`` of them: the European IV of the two-sided call and put closest to the spot,
    averaged (NaN-free expiries only)."""
    first = now_ns if after_ns is None else after_ns
    by_exp: dict[int, list[OptionQuote]] = {}
    for c in chain:
        if c.two_sided and c.expiry_ns > first:
            by_exp.setdefault(c.expiry_ns, []).append(c)
    out: list[tuple[int, float]] = []
    for exp in sorted(by_exp):
        if limit is not None and len(out) >= limit:
            break
        quotes = by_exp[exp]
        k = min(quotes, key=lambda c: (abs(c.strike - spot), c.occ_symbol)).strike
        atm = [c for c in quotes if c.strike == k]
        T = (exp - now_ns) / NS_PER_YEAR
        ivs = [float(opt.implied_vol(c.mid, spot, k, T, r, q, c.is_call)) for c in atm]
        ivs = [v for v in ivs if math.isfinite(v) and v > 0]
        if ivs:
            out.append((exp, sum(ivs) / len(ivs)))
    return out


def traded_atm_iv(
    chain: Sequence[OptionQuote], spot: float, now_ns: int, cfg: SignalsConfig, q: float, max_age_ns: int
) -> float:
    """ATM IV of the nearest expiry inside the selection's DTE window (fresh quotes only; NaN if none)."""
    sc = cfg.selection
    lo, hi = now_ns + sc.dte_min * NS_PER_DAY, now_ns + sc.dte_max * NS_PER_DAY
    window = [c for c in chain if lo <= c.expiry_ns <= hi and now_ns - c.ts_ns <= max_age_ns]
    ivs = atm_iv_by_expiry(window, spot, now_ns, sc.risk_free_rate, q, limit=1)
    return ivs[0][1] if ivs else math.nan


EVENT_MIN_DTE_DAYS = 1.0  # same-day and overnight expiries are not the "front" of an event kink


def event_risk(chain: Sequence[OptionQuote], spot: float, now_ns: int, r: float, q: float, ratio: float) -> str | None:
    """A sentence when the front expiry's ATM IV is ``ratio`` x the next expiry's or more, else None.

    The front is the first expiry at least a day out: a 0DTE or overnight expiry's ATM IV is
    dominated by its last hours (GOOG's same-day weekly on 2015-12-24 quoted 0.33-0.41 against 0.16
    for the next week), not by an event."""
    after = now_ns + int(EVENT_MIN_DTE_DAYS * NS_PER_DAY)
    ivs = atm_iv_by_expiry(chain, spot, now_ns, r, q, after_ns=after, limit=2)
    if len(ivs) < 2:
        return None
    (e0, v0), (_, v1) = ivs[0], ivs[1]
    if v1 > 0 and v0 / v1 >= ratio:
        days = (e0 - now_ns) / NS_PER_DAY
        return f"event risk: front ATM IV {v0:.2f} is {v0 / v1:.2f}x the next expiry's {v1:.2f} ({days:.1f} days out)"
    return None


class ContractSelector:
    """Pick the best contract for an idea from the current chain of its underlying."""

    def __init__(self, execution: ExecutionModel | None = None, calibrator: Calibrator | None = None) -> None:
        self.execution = execution or ExecutionModel()
        self.calibrator = calibrator or Calibrator()
        self.last_skip: str = ""  # why the latest idea found no contract (for logs and tests)

    def select(
        self,
        idea: Idea,
        chain: Sequence[OptionQuote],
        now_ns: int,
        cfg: SignalsConfig,
        *,
        dividend_yield: float = 0.0,
        iv_rank: float = math.nan,
        horizon_end_ns: int | None = None,
    ) -> Selection | None:
        """The best contract, or None (``last_skip`` says why). ``horizon_end_ns`` defaults to
        ``now_ns + idea.horizon_ns``; the engine clips it before the session's close."""
        sc = cfg.selection
        self.last_skip = ""
        if math.isfinite(iv_rank) and iv_rank > sc.max_iv_rank_debit:
            self.last_skip = f"IV rank {iv_rank:.0f} above {sc.max_iv_rank_debit:.0f}: premium too rich to buy"
            return None
        want_call = idea.direction is Direction.BULLISH
        ex = self.execution
        fresh = [q for q in chain if q.two_sided and now_ns - q.ts_ns <= ex.max_quote_age_ns]
        cands = [
            q
            for q in fresh
            if q.is_call == want_call
            and q.mid >= sc.min_premium
            and (q.ask - q.bid) / q.mid <= sc.max_spread_frac
            and q.open_interest >= sc.min_open_interest
            and q.volume >= sc.min_volume
            and not (q.ask_size > 0 and q.ask_size < sc.min_quote_size)  # 0 or NaN: size unknown
            and sc.dte_min * NS_PER_DAY <= q.expiry_ns - now_ns <= sc.dte_max * NS_PER_DAY
        ]
        if not cands:
            self.last_skip = "no fresh, liquid contract in the DTE, spread and size limits"
            return None
        S = idea.underlying_price
        r = sc.risk_free_rate
        kink = event_risk(fresh, S, now_ns, r, dividend_yield, sc.event_iv_ratio)
        if kink is not None:
            self.last_skip = kink
            return None
        end = now_ns + idea.horizon_ns if horizon_end_ns is None else horizon_end_ns
        minutes = calendar().regular_ns_between(now_ns, end) / 60e9
        if minutes <= 0:
            self.last_skip = "no trading time left in the horizon"
            return None
        # Cheap pre-filter: European IV/delta (microseconds) keeps only contracts near the delta
        # band, so the costly solver runs on a handful of them.
        mids = np.array([q.mid for q in cands])
        K = np.array([q.strike for q in cands])
        T = np.array([(q.expiry_ns - now_ns) / NS_PER_YEAR for q in cands])
        iv_eu = np.asarray(opt.implied_vol(mids, S, K, T, r, dividend_yield, want_call), float)
        near = np.isfinite(iv_eu)
        if near.any():
            d_eu = np.abs(opt.bs_greeks(S, K[near], T[near], r, iv_eu[near], dividend_yield, want_call)["delta"])
            keep = (d_eu >= sc.delta_min - DELTA_PREFILTER_MARGIN) & (d_eu <= sc.delta_max + DELTA_PREFILTER_MARGIN)
            near[np.flatnonzero(near)[~keep]] = False
        # European IV fails below the European bound (deep ITM American puts): let the American solver try.
        near |= ~np.isfinite(iv_eu)
        if not near.any():
            self.last_skip = "no contract near the delta band"
            return None
        cands = [c for c, n in zip(cands, near, strict=True) if n]
        mids, K, T = mids[near], K[near], T[near]
        styles = [exercise_style(c.occ_symbol) for c in cands]
        iv = np.full(len(cands), np.nan)
        for style in set(styles):
            m = np.array([st == style for st in styles])
            iv[m] = np.asarray(
                opt.implied_vol(mids[m], S, K[m], T[m], r, dividend_yield, want_call, style=style), float
            )
        ok = np.isfinite(iv) & (iv > 0)
        if not ok.any():
            self.last_skip = "no implied volatility solves"
            return None
        g = opt.trader_units(opt.bs_greeks(S, K[ok], T[ok], r, iv[ok], dividend_yield, want_call))
        evidence = idea.evidence + (
            cfg.confidence.low_iv_bonus if math.isfinite(iv_rank) and iv_rank < sc.low_iv_rank else 0.0
        )
        evidence = min(1.0, max(0.0, evidence))
        best: tuple[tuple[float, float, str], Selection] | None = None
        for j, idx in enumerate(np.flatnonzero(ok)):
            q = cands[int(idx)]
            delta, gamma = float(g["delta"][j]), float(g["gamma"][j])
            theta, vega, rho = float(g["theta"][j]), float(g["vega"][j]), float(g["rho"][j])
            if not (sc.delta_min <= abs(delta) <= sc.delta_max):
                continue
            sel = self._levels(q, idea, S, float(iv[idx]), delta, gamma, theta, minutes, evidence, cfg)
            if sel is None:
                continue
            sel = Selection(
                **{
                    **sel.__dict__,
                    "greeks": GreeksTU(delta, gamma, theta, vega, rho),
                    "style": styles[int(idx)],
                    "evidence": evidence,
                }
            )
            spread = (q.ask - q.bid) / q.mid
            key = (sel.expected_return_pct, -spread, q.occ_symbol)
            if best is None or key > best[0]:
                best = (key, sel)
        if best is None and not self.last_skip:
            self.last_skip = "no contract pays its costs (spread, fees, stop distance) at positive expected value"
        return best[1] if best else None

    def _levels(
        self,
        q: OptionQuote,
        idea: Idea,
        spot: float,
        iv: float,
        delta: float,
        gamma: float,
        theta: float,
        minutes: float,
        evidence: float,
        cfg: SignalsConfig,
    ) -> Selection | None:
        """Executable entry/target/stop for one contract, or None when it can't pay its costs."""
        sc = cfg.selection
        ex = self.execution
        fee = ex.fee_per_contract / q.multiplier  # dollars per share per fill
        entry = q.ask
        cost = entry + fee
        spread = q.ask - q.bid
        trading_days = minutes / MINUTES_PER_REGULAR_SESSION
        theta_trading_day = theta * 365.0 / SESSIONS_PER_YEAR  # theta is per calendar day in trader units
        dS = idea.projected_move
        dv = delta * dS + 0.5 * gamma * dS * dS + theta_trading_day * trading_days
        if dv <= sc.spread_cover * 0.5 * spread:
            return None  # the projected move can't even pay the spread
        net_ret = 100.0 * ((q.bid + dv - fee) / cost - 1.0)  # sell at the bid after the projected move
        t_pct = min(sc.target_max_pct, max(sc.target_min_pct, sc.target_capture * net_ret))
        target = ex.exit_for_return(entry, t_pct)  # a bid price
        atr = idea.atr if math.isfinite(idea.atr) and idea.atr > 0 else abs(dS)
        move = atr * math.sqrt(sc.noise_bars)
        noise = abs(delta) * move + 0.5 * abs(gamma) * move * move
        stop = entry - max(sc.stop_spread_mult * spread, sc.stop_noise_mult * noise)  # a bid price
        if stop <= 0:
            return None
        loss = cost - (stop - fee)  # dollars per share lost at the stop
        gain = target - fee - cost
        loss_pct = 100.0 * loss / cost
        if loss_pct > sc.max_stop_pct:
            return None
        rr = gain / loss if loss > 0 else math.inf
        if rr < sc.min_reward_risk:
            return None
        # underlying levels where the bid reaches the target / the stop (the bid moves with the option)
        years = trading_days / SESSIONS_PER_YEAR
        x_up = move_for_option_change(delta, gamma, theta_trading_day, trading_days, target - q.bid)
        x_dn = move_for_option_change(delta, gamma, theta_trading_day, trading_days, stop - q.bid)
        if not (math.isfinite(x_up) and math.isfinite(x_dn)) or spot + dS <= 0:
            return None
        hit, miss = spot + x_up, spot + x_dn
        # the model: the strategy's projected move as the drift of a lognormal at the contract's IV
        log_drift = math.log((spot + dS) / spot) / years
        mu = log_drift + 0.5 * iv * iv
        if idea.direction is Direction.BULLISH:
            p_race = race_probability(spot, hit, miss, iv, mu) if hit > spot > miss else 0.0
        else:
            p_race = 1.0 - race_probability(spot, miss, hit, iv, mu) if miss > spot > hit > 0 else 0.0
        p_reach = reach_probability(spot, hit, iv, years, log_drift) if hit > 0 else 0.0
        p_model = p_race * p_reach
        p_stop = (1.0 - p_race) * reach_probability(spot, miss, iv, years, log_drift) if miss > 0 else 1.0
        conf = self.calibrator(p_model, evidence, Context(idea.strategy, spread / q.mid, rr, minutes))
        # a horizon exit is valued without the strategy's edge (the calibrated target probability
        # carries it): the bid after theta, sold, less the cost
        flat = q.bid + theta_trading_day * trading_days - fee - cost
        ev_pct = 100.0 * expected_value(conf, p_model, p_stop, gain, loss, flat) / cost
        if ev_pct <= sc.min_expected_value_pct:
            return None
        risk_usd = loss * q.multiplier
        contracts = int(cfg.sizing.risk_per_trade_usd // risk_usd) if risk_usd > 0 else 0
        if contracts < 1:
            return None  # one contract already risks more than the budget per trade
        return Selection(
            quote=q,
            entry=entry,
            target=target,
            stop=stop,
            iv=iv,
            greeks=GreeksTU(delta, gamma, theta, 0.0, 0.0),
            confidence=conf,
            expected_return_pct=ev_pct,
            reward_risk=rr,
            p_model=p_model,
            risk_per_contract=risk_usd,
            suggested_contracts=contracts,
        )
