"""Option-chain analytics: per-contract IV and Greeks (American pricer), and chain-level figures.

Conventions: premiums in dollars per share, times int64 ns UTC, expiries are dates that expire at
16:00 America/New_York, ``t`` in years ACT/365, IVs annual (0.25 = 25%), contract multiplier 100
unless the chain says otherwise. Pricing maths (IV, Greeks) is ``aiots.core.options``; this module
only aggregates.

Per expiry the forward and the implied continuous dividend yield (or borrow) ``q = r - ln(F/S)/T``
come from put-call parity via ``aiots.core.chain.implied_forward`` (``F = K + e^{rT} (C - P)``,
median over the ``PARITY_STRIKES`` strikes with the smallest |C - P|, where both mids exist). For
American options parity holds only approximately (early exercise), which is why only
near-the-money strikes are used. Every contract's IV is then the American IV of its mid with that
``q``; its Greeks come from the American pricer at that IV.

The 25-delta risk reversal / butterfly use the market convention: the strike whose Black-Scholes
spot delta at its own smile IV is +/-0.25 (``aiots.core.chain.strike_from_delta`` solved as a fixed
point over the smile, linear in strike between listed strikes).

Dealer exposures assume dealers are long calls and short puts to customers' opposite position
(the usual "GEX" convention): ``GEX = gamma * OI * multiplier * S^2 * 0.01`` (calls +, puts -), in
dollars per 1% move; ``DEX = delta * OI * multiplier * S`` in dollars. The zero-gamma level is
where the total GEX profile, recomputed at shifted spots with European gamma at each contract's
IV and implied yield (a fast proxy for the American gamma), changes sign.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core import chain as core_chain
from aiots.core import options as opt
from aiots.services.analytics.pricing import GREEK_NAMES, TRADER_FIRST_ORDER, AmericanMethod

F64 = npt.NDArray[np.float64]
NS = 1_000_000_000
YEAR_NS = core_chain.NS_PER_YEAR
CONTRACT_MULTIPLIER = 100
PARITY_STRIKES = 3
PARITY_REFINE = 2
ZERO_GAMMA_RANGE = 0.25
ZERO_GAMMA_POINTS = 26
ZERO_GAMMA_REFINE = 12
ZERO_GAMMA_XTOL = 1e-5
DELTA_25 = 0.25
#: Illinois refinement of the 25-delta strike within its bracketing listed strikes
DELTA_REFINE = 30
DELTA_XTOL = 1e-10
IV_RANK_TARGET_DAYS = 30.0


@dataclass(frozen=True)
class AnalyticsConfig:
    """Inputs that are settings, not data."""

    rate: float
    unusual_threshold: float
    american_method: AmericanMethod = "bjerksund_stensland_2002"
    max_unusual: int = 50


@dataclass
class EnrichedChain:
    """A chain with per-contract T, mid, IV (reason), Greeks; arrays aligned with ``occ``."""

    underlying: str
    as_of_ns: int
    spot: float
    occ: list[str]
    expiry: list[str]
    strike: F64
    is_call: npt.NDArray[np.bool_]
    bid: F64
    ask: F64
    mid: F64
    last: F64
    volume: F64
    open_interest: F64
    oi_as_of: str
    t: F64
    iv: F64
    iv_reason: list[str]
    greeks: dict[str, F64]
    forward: dict[str, float]
    dividend_yield: dict[str, float]


@dataclass(frozen=True)
class ExpiryStats:
    """Analytics of one expiry (see ExpiryAnalytics in analytics.proto)."""

    expiry: str
    dte: float
    atm_iv: float
    rr25: float
    bf25: float
    expected_move_straddle: float
    expected_move_iv: float
    max_pain: float
    forward: float
    implied_dividend_yield: float


@dataclass(frozen=True)
class StrikeExposureRow:
    """Dealer exposures at one strike."""

    strike: float
    gex: float
    dex: float
    call_oi: float
    put_oi: float


@dataclass(frozen=True)
class UnusualRow:
    """A contract with volume/OI above the threshold (index into the enriched chain)."""

    index: int
    volume: float
    open_interest: float
    ratio: float


@dataclass(frozen=True)
class ChainAnalytics:
    """Chain-level analytics (see GetOptionsAnalyticsResponse)."""

    underlying: str
    spot: float
    as_of_ns: int
    oi_as_of: str
    expiries: list[ExpiryStats]
    pcr_volume: float
    pcr_oi: float
    exposures: list[StrikeExposureRow]
    total_gex: float
    zero_gamma: float
    total_dex: float
    unusual: list[UnusualRow]
    iv_rank: float
    iv_percentile: float
    iv_history_days: int


def expiry_ns(expiry: str) -> int:
    """16:00 America/New_York on ``expiry`` (YYYY-MM-DD), in ns UTC (``aiots.core.chain.expiry_ns``)."""
    return core_chain.expiry_ns(expiry)


def _mid(bid: F64, ask: F64, last: F64) -> F64:
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid >= 0) & (ask > 0) & (ask >= bid)
    mid = np.where(ok, (bid + ask) / 2.0, np.nan)
    return np.asarray(np.where(np.isfinite(mid), mid, np.where(last > 0, last, np.nan)), dtype=np.float64)


def _parity_forward(
    strike: F64,
    is_call: npt.NDArray[np.bool_],
    mid: F64,
    spot: float,
    t: float,
    r: float,
    method: AmericanMethod,
    refine: int = PARITY_REFINE,
) -> tuple[float, float]:
    """(F, q) of one expiry from put-call parity (``aiots.core.chain.implied_forward``); NaNs when
    no strike has both a call and a put mid.

    American premiums carry an early-exercise premium that biases parity, so the estimate is
    refined ``refine`` times on the strikes nearest the money: each mid is turned into the
    European price at its American IV under the current ``q`` and parity is applied again.
    """
    kc, kp = strike[is_call], strike[~is_call]
    both, ic, ip = np.intersect1d(kc, kp, assume_unique=False, return_indices=True)
    cm, pm = mid[is_call][ic], mid[~is_call][ip]
    try:
        est = core_chain.implied_forward(both, cm, pm, t, r, spot=spot, n_near=PARITY_STRIKES)
    except ValueError:
        return math.nan, math.nan
    ok = np.isfinite(cm) & np.isfinite(pm) & (cm > 0) & (pm > 0)
    near = np.flatnonzero(ok)[np.argsort(np.abs(cm[ok] - pm[ok]), kind="stable")[: PARITY_STRIKES * 2]]
    k, c, p = both[near], cm[near], pm[near]
    for _ in range(refine):
        if not math.isfinite(est.q):
            break
        prices = []
        for right, m in ((True, c), (False, p)):
            iv = opt.implied_vol(m, spot, k, t, r, est.q, right, style="american", method=method)
            prices.append(np.asarray(opt.bs_price(spot, k, t, r, iv, est.q, right), dtype=np.float64))
        try:
            est = core_chain.implied_forward(k, prices[0], prices[1], t, r, spot=spot, n_near=PARITY_STRIKES)
        except ValueError:
            break
    return est.forward, est.q


def enrich(chain: Any, cfg: AnalyticsConfig, now_ns: int | None = None) -> EnrichedChain:
    """Per-contract mids, forwards/yields per expiry, American IVs and Greeks.

    ``chain`` is an ``aiots.services.storage.queries.OptionChain`` (or anything with its fields).
    """
    n = len(chain.occ)
    ts = np.asarray(chain.ts, dtype=np.int64)
    as_of = int(ts.max()) if n and ts.max() > 0 else (now_ns or 0)
    spot = float(chain.spot)
    if not (math.isfinite(spot) and spot > 0):
        und = np.asarray(chain.underlying_price, dtype=np.float64)
        spot = float(np.nanmedian(und)) if n and np.isfinite(und).any() else math.nan
    expiries = [str(e) for e in np.asarray(chain.expiry).astype("datetime64[D]").astype(str)]
    strike = np.asarray(chain.strike, dtype=np.float64)
    is_call = np.asarray(chain.right) == "C"
    bid = np.asarray(chain.bid, dtype=np.float64)
    ask = np.asarray(chain.ask, dtype=np.float64)
    last = np.asarray(chain.last, dtype=np.float64)
    mid = _mid(bid, ask, last)
    exp_ns = {e: expiry_ns(e) for e in set(expiries)}
    t = np.array([(exp_ns[e] - as_of) / YEAR_NS for e in expiries], dtype=np.float64)
    r = cfg.rate
    forward: dict[str, float] = {}
    qy: dict[str, float] = {}
    q = np.full(n, np.nan)
    exp_arr = np.asarray(expiries)
    for e in sorted(set(expiries)):
        sel = exp_arr == e
        te = float(t[sel][0])
        f, qe = (
            _parity_forward(strike[sel], is_call[sel], mid[sel], spot, te, r, cfg.american_method)
            if te > 0
            else (math.nan, 0.0)
        )
        if not math.isfinite(qe):
            qe = 0.0
        if not math.isfinite(f) and te > 0:
            f = spot * math.exp(r * te)
        forward[e], qy[e] = f, qe
        q[sel] = qe
    iv = np.full(n, np.nan)
    reasons = ["NO_QUOTE" if not np.isfinite(m) else "" for m in mid]
    for i in np.flatnonzero(t <= 0):
        reasons[i] = "EXPIRED"
    ok = np.array([not x for x in reasons], dtype=np.bool_)
    idx = np.flatnonzero(ok)
    greeks = {g: np.full(n, np.nan) for g in (*GREEK_NAMES, "price")}
    raw_gamma = np.full(n, np.nan)
    if idx.size and math.isfinite(spot):
        sol, codes = opt.implied_vol(
            mid[idx], spot, strike[idx], t[idx], r, q[idx], is_call[idx],
            style="american", return_reason=True, method=cfg.american_method,
        )  # fmt: skip
        iv[idx] = sol
        for j, c in zip(idx.tolist(), np.asarray(codes).tolist(), strict=True):
            if c != opt.OK:
                reasons[j] = str(opt.REASONS.get(int(c), f"REASON_{c}"))
        good = idx[np.isfinite(iv[idx])]
        if good.size:
            raw = opt.american_greeks(
                spot, strike[good], t[good], r, iv[good], q[good], is_call[good], method=cfg.american_method
            )
            trader = opt.trader_units(raw)
            for g in raw.dtype.names or ():
                src = trader if g in TRADER_FIRST_ORDER else raw
                greeks[g][good] = src[g]
            raw_gamma[good] = raw["gamma"]
    oi_dates = np.asarray(chain.oi_as_of).astype("datetime64[D]")
    oi_valid = oi_dates[~np.isnat(oi_dates)]
    return EnrichedChain(
        underlying=str(chain.underlying),
        as_of_ns=as_of,
        spot=spot,
        occ=list(chain.occ),
        expiry=expiries,
        strike=strike,
        is_call=is_call,
        bid=bid,
        ask=ask,
        mid=mid,
        last=last,
        volume=np.nan_to_num(np.asarray(chain.volume, dtype=np.float64), nan=0.0),
        open_interest=np.nan_to_num(np.asarray(chain.open_interest, dtype=np.float64), nan=0.0),
        oi_as_of=str(oi_valid.max()) if oi_valid.size else "",
        t=t,
        iv=iv,
        iv_reason=reasons,
        greeks=greeks,
        forward=forward,
        dividend_yield=qy,
    )


def max_pain(strike: F64, is_call: npt.NDArray[np.bool_], oi: F64) -> float:
    """Strike minimising the total intrinsic value paid to option holders at expiry."""
    ks = np.unique(strike)
    if ks.size == 0:
        return math.nan
    cs, co = strike[is_call], oi[is_call]
    ps, po = strike[~is_call], oi[~is_call]
    pain = np.maximum(ks[:, None] - cs[None, :], 0.0) @ co + np.maximum(ps[None, :] - ks[:, None], 0.0) @ po
    return float(ks[int(np.argmin(pain))])


def _atm_iv(strike: F64, is_call: npt.NDArray[np.bool_], iv: F64, fwd: float) -> float:
    """IV at K = F: per strike the mean of the call/put IVs, interpolated linearly in strike."""
    ok = np.isfinite(iv)
    if not ok.any() or not math.isfinite(fwd):
        return math.nan
    ks, inv = np.unique(strike[ok], return_inverse=True)
    per = np.bincount(inv, weights=iv[ok], minlength=ks.size) / np.bincount(inv, minlength=ks.size)
    return float(np.interp(fwd, ks, per))


def _iv_at_delta(strike: F64, iv: F64, target: float, spot: float, t: float, r: float, q: float, call: bool) -> float:
    """Smile IV at the strike whose BSM spot delta, at that strike's own IV, equals ``target``.

    The smile is ``iv`` linear in strike between the listed ``strike``s (one side: calls for a call
    delta). The strike is the root of ``g(K) = strike_from_delta(target, sigma(K)) - K``: a sign
    change over the listed strikes (the one nearest the flat-smile answer) refined by Illinois
    regula falsi. NaN when the delta is not reached within the listed strikes.
    """
    ok = np.isfinite(strike) & np.isfinite(iv) & (iv > 0)
    if ok.sum() < 2 or not (t > 0 and math.isfinite(spot)):
        return math.nan
    ks, inv = np.unique(strike[ok], return_inverse=True)
    vs = np.bincount(inv, weights=iv[ok], minlength=ks.size) / np.bincount(inv, minlength=ks.size)

    def g(k: F64) -> F64:
        sig = np.interp(k, ks, vs)
        return np.asarray(core_chain.strike_from_delta(target, spot, t, r, sig, q, call), dtype=np.float64) - k

    gk = g(ks)
    flips = np.flatnonzero(np.isfinite(gk[:-1]) & np.isfinite(gk[1:]) & (np.sign(gk[:-1]) * np.sign(gk[1:]) <= 0))
    if flips.size == 0:
        return math.nan
    flat = float(np.asarray(core_chain.strike_from_delta(target, spot, t, r, float(np.median(vs)), q, call)))
    mids = (ks[flips] + ks[flips + 1]) / 2.0
    i = int(flips[int(np.argmin(np.abs(mids - flat)))]) if math.isfinite(flat) else int(flips[0])
    a, b, fa, fb = float(ks[i]), float(ks[i + 1]), float(gk[i]), float(gk[i + 1])
    x = a if fa == 0.0 else b
    for _ in range(DELTA_REFINE):
        if fa == 0.0 or fb == 0.0 or abs(b - a) < DELTA_XTOL * spot:
            x = a if fa == 0.0 else b
            break
        x = b - fb * (b - a) / (fb - fa)
        fx = float(g(np.array([x]))[0])
        if fx * fb < 0:
            a, fa = b, fb
        else:
            fa /= 2.0
        b, fb = x, fx
    return float(np.interp(x, ks, vs))


def _expiry_stats(ch: EnrichedChain, e: str, exp_arr: npt.NDArray[np.str_], rate: float) -> ExpiryStats:
    sel = exp_arr == e
    k, c, iv = ch.strike[sel], ch.is_call[sel], ch.iv[sel]
    mid = ch.mid[sel]
    te = float(ch.t[sel][0])
    fwd, qe = ch.forward[e], ch.dividend_yield[e]
    atm = _atm_iv(k, c, iv, fwd)
    ivc = _iv_at_delta(k[c], iv[c], DELTA_25, ch.spot, te, rate, qe, True)
    ivp = _iv_at_delta(k[~c], iv[~c], -DELTA_25, ch.spot, te, rate, qe, False)
    calls = {float(kk): float(m) for kk, m in zip(k[c], mid[c], strict=True) if np.isfinite(m)}
    puts = {float(kk): float(m) for kk, m in zip(k[~c], mid[~c], strict=True) if np.isfinite(m)}
    both = sorted(set(calls) & set(puts), key=lambda kk: abs(kk - fwd) if math.isfinite(fwd) else 0.0)
    straddle = calls[both[0]] + puts[both[0]] if both else math.nan
    return ExpiryStats(
        expiry=e,
        dte=te * 365.0,
        atm_iv=atm,
        rr25=ivc - ivp,
        bf25=(ivc + ivp) / 2.0 - atm,
        expected_move_straddle=straddle,
        expected_move_iv=ch.spot * atm * math.sqrt(te) if te > 0 else math.nan,
        max_pain=max_pain(k, c, ch.open_interest[sel]),
        forward=fwd,
        implied_dividend_yield=ch.dividend_yield[e],
    )


def exposures(ch: EnrichedChain) -> tuple[list[StrikeExposureRow], float, float]:
    """(GEX/DEX per strike, total GEX, total DEX) in dollars (see module docstring)."""
    s = ch.spot
    sign = np.where(ch.is_call, 1.0, -1.0)
    gamma = np.nan_to_num(ch.greeks["gamma"])
    delta = np.nan_to_num(ch.greeks["delta"])
    gex = sign * gamma * ch.open_interest * CONTRACT_MULTIPLIER * s * s * 0.01
    dex = delta * ch.open_interest * CONTRACT_MULTIPLIER * s
    ks, inv = np.unique(ch.strike, return_inverse=True)
    oi_c = np.where(ch.is_call, ch.open_interest, 0.0)
    sums = [np.bincount(inv, weights=w, minlength=ks.size) for w in (gex, dex, oi_c, ch.open_interest - oi_c)]
    rows = [
        StrikeExposureRow(strike=k, gex=g, dex=d, call_oi=c, put_oi=p)
        for k, g, d, c, p in zip(ks.tolist(), *(x.tolist() for x in sums), strict=True)
    ]
    return rows, float(gex.sum()), float(dex.sum())


def zero_gamma_level(ch: EnrichedChain, rate: float) -> float:
    """Spot in [S(1-25%), S(1+25%)] where the total GEX profile changes sign (nearest to S); NaN if none.

    The profile is evaluated on a coarse grid of ``ZERO_GAMMA_POINTS`` spots; the sign change nearest
    to S is then refined by regula falsi (Illinois) on the profile itself to ``ZERO_GAMMA_XTOL`` x S.
    """
    ok = np.isfinite(ch.iv) & (ch.t > 0) & (ch.open_interest > 0)
    if not ok.any() or not math.isfinite(ch.spot):
        return math.nan
    exp_arr = np.asarray(ch.expiry)
    q = np.zeros(int(ok.sum()))
    for e, qe in ch.dividend_yield.items():
        q[exp_arr[ok] == e] = qe
    k, t, iv, call = ch.strike[ok], ch.t[ok], ch.iv[ok], ch.is_call[ok]
    sign = np.where(call, 1.0, -1.0) * ch.open_interest[ok] * CONTRACT_MULTIPLIER

    def profile(spots: F64) -> F64:
        # one flat core call per spot: the core's fast path is 1-d contiguous arrays
        tot = [float(np.nan_to_num(opt.bs_greeks(x, k, t, rate, iv, q, call)["gamma"]) @ sign) for x in spots.tolist()]
        return np.asarray(tot) * spots * spots * 0.01

    grid = ch.spot * np.linspace(1 - ZERO_GAMMA_RANGE, 1 + ZERO_GAMMA_RANGE, ZERO_GAMMA_POINTS)
    prof = profile(grid)
    flips = np.flatnonzero(np.sign(prof[:-1]) * np.sign(prof[1:]) < 0)
    if flips.size == 0:
        return math.nan
    lin = grid[flips] - prof[flips] * (grid[flips + 1] - grid[flips]) / (prof[flips + 1] - prof[flips])
    i = int(flips[int(np.argmin(np.abs(lin - ch.spot)))])
    a, b, fa, fb = float(grid[i]), float(grid[i + 1]), float(prof[i]), float(prof[i + 1])
    x = float(lin[int(np.argmin(np.abs(lin - ch.spot)))])
    for _ in range(ZERO_GAMMA_REFINE):
        if abs(b - a) < ZERO_GAMMA_XTOL * ch.spot:
            break
        x = b - fb * (b - a) / (fb - fa)
        fx = float(profile(np.array([x]))[0])
        if fx == 0.0:
            break
        if fx * fb < 0:
            a, fa = b, fb
        else:
            fa /= 2.0
        b, fb = x, fx
    return x


def iv_rank_percentile(current: float, history: F64) -> tuple[float, float, int]:
    """(rank 0..100, percentile 0..100, days) of ``current`` against the daily ATM IV ``history``.

    rank = (current - min) / (max - min); percentile = share of days with IV below current.
    NaN when there is no history (or it is flat, for the rank).
    """
    h = np.asarray(history, dtype=np.float64)
    h = h[np.isfinite(h)]
    if h.size == 0 or not math.isfinite(current):
        return math.nan, math.nan, int(h.size)
    lo, hi = float(h.min()), float(h.max())
    rank = (current - lo) / (hi - lo) * 100.0 if hi > lo else math.nan
    pct = float(np.mean(h < current) * 100.0)
    return float(min(max(rank, 0.0), 100.0)) if math.isfinite(rank) else rank, pct, int(h.size)


def reference_atm_iv(stats: list[ExpiryStats]) -> float:
    """ATM IV at 30 days: linear in total variance between the bracketing expiries (nearest if outside)."""
    pts = [(s.dte, s.atm_iv) for s in stats if math.isfinite(s.atm_iv) and s.dte > 0]
    if not pts:
        return math.nan
    pts.sort()
    if pts[0][0] >= IV_RANK_TARGET_DAYS:
        return pts[0][1]
    if pts[-1][0] <= IV_RANK_TARGET_DAYS:
        return pts[-1][1]
    for (d0, v0), (d1, v1) in itertools.pairwise(pts):
        if d0 <= IV_RANK_TARGET_DAYS <= d1:
            w = v0 * v0 * d0 + (v1 * v1 * d1 - v0 * v0 * d0) * (IV_RANK_TARGET_DAYS - d0) / (d1 - d0)
            return math.sqrt(max(w, 0.0) / IV_RANK_TARGET_DAYS)
    return pts[0][1]


def analyze(ch: EnrichedChain, cfg: AnalyticsConfig, iv_history: F64) -> ChainAnalytics:
    """Chain-level analytics over an enriched chain and the stored daily ATM IV history."""
    exp_arr = np.asarray(ch.expiry)
    stats = [_expiry_stats(ch, e, exp_arr, cfg.rate) for e in sorted(set(ch.expiry))]
    vol_c, vol_p = ch.volume[ch.is_call].sum(), ch.volume[~ch.is_call].sum()
    oi_c, oi_p = ch.open_interest[ch.is_call].sum(), ch.open_interest[~ch.is_call].sum()
    rows, total_gex, total_dex = exposures(ch)
    unusual = [
        UnusualRow(int(i), float(ch.volume[i]), float(ch.open_interest[i]), float(ch.volume[i] / ch.open_interest[i]))
        for i in np.flatnonzero(ch.open_interest > 0)
        if ch.volume[i] / ch.open_interest[i] > cfg.unusual_threshold
    ]
    unusual.sort(key=lambda u: -u.ratio)
    rank, pct, days = iv_rank_percentile(reference_atm_iv(stats), iv_history)
    return ChainAnalytics(
        underlying=ch.underlying,
        spot=ch.spot,
        as_of_ns=ch.as_of_ns,
        oi_as_of=ch.oi_as_of,
        expiries=stats,
        pcr_volume=float(vol_p / vol_c) if vol_c > 0 else math.nan,
        pcr_oi=float(oi_p / oi_c) if oi_c > 0 else math.nan,
        exposures=rows,
        total_gex=total_gex,
        zero_gamma=zero_gamma_level(ch, cfg.rate),
        total_dex=total_dex,
        unusual=unusual[: cfg.max_unusual],
        iv_rank=rank,
        iv_percentile=pct,
        iv_history_days=days,
    )
