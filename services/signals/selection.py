"""Contract selection: which option expresses an :class:`Idea`, and its entry, target and stop.

For each candidate (calls for bullish ideas, puts for bearish) inside the DTE window with
enough open interest and volume and a tight enough spread:

1. IV from the mid with the core's **American** solver; Greeks are the core's closed-form BSM
   Greeks at that IV (with the dividend yield), in trader units. |delta| must sit in the band.
2. Modelled option P&L for the projected underlying move ``dS`` over the horizon ``h`` days:
   ``dV = delta*dS + gamma*dS^2/2 + theta*h`` (theta per day). It must pay ``spread_cover`` x
   the half-spread and reach at least ``target_min_pct`` of the premium.
3. Target = entry x (1 + t) with t = clamp(target_capture x dV/entry, 5 %, 10 %); stop =
   entry x (1 - s) with s = min(max_stop_pct, t / min_reward_risk), so reward:risk >= minimum.
4. Confidence = w x p_model + (1 - w) x evidence, where p_model is the probability that the
   underlying (lognormal at the contract's IV, drift r - q) reaches the price where the option
   hits its target before the price where it hits its stop, times the probability of reaching
   that price within the horizon (reflection principle). Evidence is the strategy's 0..1 score
   (+ a bonus when IV rank is low: cheap premium).

Deterministic: candidates are ranked by (confidence, -spread, OCC symbol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aiots.core import options as opt
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Direction, GreeksTU, Idea, OptionQuote

NS_PER_YEAR = 365.0 * 86_400e9
NS_PER_DAY = 86_400e9
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
    expected_return_pct: float
    reward_risk: float
    p_model: float


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


def reach_probability(spot: float, level: float, sigma: float, years: float) -> float:
    """P(max (or min) of a driftless log-price over ``years`` reaches ``level``) = 2 N(-|ln(L/S)|/(s sqrt t))."""
    if years <= 0 or sigma <= 0:
        return 0.0
    d = abs(math.log(level / spot)) / (sigma * math.sqrt(years))
    return min(1.0, 2.0 * _norm_cdf(-d))


class ContractSelector:
    """Pick the best contract for an idea from the current chain of its underlying."""

    def select(
        self,
        idea: Idea,
        chain: Sequence[OptionQuote],
        now_ns: int,
        cfg: SignalsConfig,
        *,
        dividend_yield: float = 0.0,
        iv_rank: float = math.nan,
    ) -> Selection | None:
        sc = cfg.selection
        if math.isfinite(iv_rank) and iv_rank > sc.max_iv_rank_debit:
            return None  # IV-aware rule: premium too rich to buy
        want_call = idea.direction is Direction.BULLISH
        cands = [
            q
            for q in chain
            if q.is_call == want_call
            and q.bid > 0
            and q.ask >= q.bid
            and q.mid >= sc.min_premium
            and (q.ask - q.bid) / q.mid <= sc.max_spread_frac
            and q.open_interest >= sc.min_open_interest
            and q.volume >= sc.min_volume
            and sc.dte_min * NS_PER_DAY <= q.expiry_ns - now_ns <= sc.dte_max * NS_PER_DAY
        ]
        if not cands:
            return None
        S = idea.underlying_price
        r = sc.risk_free_rate
        # Cheap pre-filter: European IV/delta (microseconds) keeps only contracts near the delta
        # band, so the American solver (the costly step) runs on a handful of them.
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
            return None
        cands = [c for c, n in zip(cands, near, strict=True) if n]
        mids, K, T = mids[near], K[near], T[near]
        iv = np.asarray(opt.implied_vol(mids, S, K, T, r, dividend_yield, want_call, style="american"), float)
        ok = np.isfinite(iv) & (iv > 0)
        if not ok.any():
            return None
        g = opt.trader_units(opt.bs_greeks(S, K[ok], T[ok], r, iv[ok], dividend_yield, want_call))
        horizon_days = idea.horizon_ns / NS_PER_DAY
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
            sel = self._levels(q, idea, S, float(iv[idx]), delta, gamma, theta, horizon_days, evidence, cfg)
            if sel is None:
                continue
            sel = Selection(**{**sel.__dict__, "greeks": GreeksTU(delta, gamma, theta, vega, rho)})
            spread = (q.ask - q.bid) / q.mid
            key = (sel.confidence, -spread, q.occ_symbol)
            if best is None or key > best[0]:
                best = (key, sel)
        return best[1] if best else None

    @staticmethod
    def _levels(
        q: OptionQuote,
        idea: Idea,
        spot: float,
        iv: float,
        delta: float,
        gamma: float,
        theta: float,
        days: float,
        evidence: float,
        cfg: SignalsConfig,
    ) -> Selection | None:
        sc = cfg.selection
        entry = q.mid
        dS = idea.projected_move
        dv = delta * dS + 0.5 * gamma * dS * dS + theta * days
        half_spread = 0.5 * (q.ask - q.bid)
        if dv <= sc.spread_cover * half_spread:
            return None  # the modelled move can't pay the spread
        exp_ret = 100.0 * dv / entry
        if exp_ret < sc.target_min_pct:
            return None
        t_pct = min(sc.target_max_pct, max(sc.target_min_pct, sc.target_capture * exp_ret))
        s_pct = min(sc.max_stop_pct, t_pct / sc.min_reward_risk)
        target = entry * (1.0 + t_pct / 100.0)
        stop = entry * (1.0 - s_pct / 100.0)
        rr = (target - entry) / (entry - stop)
        x_up = move_for_option_change(delta, gamma, theta, days, target - entry)
        x_dn = move_for_option_change(delta, gamma, theta, days, stop - entry)
        if not (math.isfinite(x_up) and math.isfinite(x_dn)):
            return None
        hit, miss = spot + x_up, spot + x_dn
        mu = sc.risk_free_rate
        if idea.direction is Direction.BULLISH:
            p_race = race_probability(spot, hit, miss, iv, mu) if hit > spot > miss else 0.0
        else:
            p_race = 1.0 - race_probability(spot, miss, hit, iv, mu) if miss > spot > hit > 0 else 0.0
        p_reach = reach_probability(spot, hit, iv, idea.horizon_ns / NS_PER_YEAR) if hit > 0 else 0.0
        p_model = p_race * p_reach
        w = cfg.confidence.model_weight
        conf = min(1.0, max(0.0, w * p_model + (1.0 - w) * evidence))
        return Selection(
            quote=q,
            entry=entry,
            target=target,
            stop=stop,
            iv=iv,
            greeks=GreeksTU(delta, gamma, theta, 0.0, 0.0),
            confidence=conf,
            expected_return_pct=exp_ret,
            reward_risk=rr,
            p_model=p_model,
        )
