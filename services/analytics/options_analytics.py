"""Option-chain analytics: per-contract IV and Greeks, and chain-level figures.

Conventions: premiums in dollars per share, times int64 ns UTC, expiries expire at their session's
close (``aiots.core.conventions.expiry_ns``: 16:00 ET or the early close), ``t`` in years ACT/365,
IVs annual (0.25 = 25%), contract multiplier 100. Pricing maths (IV, Greeks) is
``aiots.core.options``; market facts are ``aiots.core.conventions``; this module only aggregates.

Quote hygiene (``quotes.py``): a contract is priced from its two-sided, uncrossed mid, else from a
last trade younger than ``max_last_age_ns`` (flagged); one-sided, crossed and stale contracts get
no IV. ATM IV, skew, the parity forward and the surface use two-sided mids only; the left-out
contracts are counted by reason (``excluded``).

Exercise style comes from each contract's root (``conventions.exercise_style``): European index
options (SPX, SPXW, XSP, NDX, RUT...) are priced with Black-Scholes-Merton on the expiry's
put-call-parity forward (equivalently Black-76; the yield used is ``r - ln(F/S)/T``), American
options (equities, ETFs) with the configured American approximation on spot and the symbol's
configured dividend yield.

Carry: per expiry the forward comes from put-call parity via ``aiots.core.chain.implied_forward``
(``F = K + e^{rT} (C - P)``, median over the ``PARITY_STRIKES`` strikes with the smallest |C - P|,
two-sided mids only; for American options refined on de-Americanised prices near the money),
else ``S e^{(r - q)T}``. The implied carry is ``ln(F/S)/T``; it is only meaningful when the spot's
time matches the quotes' (``spot_in_sync``), so it is never reported as a dividend yield.

The 25-delta risk reversal / butterfly use the market convention: the strike whose Black-Scholes
spot delta at its own smile IV is +/-0.25 (``aiots.core.chain.strike_from_delta`` solved as a fixed
point over the smile, linear in strike between listed strikes).

Dealer exposures assume dealers are long calls and short puts to customers' opposite position
(the usual "GEX" convention): ``GEX = gamma * OI * multiplier * S^2 * 0.01`` (calls +, puts -), in
dollars per 1% move; ``DEX = delta * OI * multiplier * S`` in dollars. The zero-gamma level is
where the total GEX profile, recomputed at shifted spots with European gamma at each contract's
IV and implied yield (a fast proxy for the American gamma), changes sign.

Size: chain enrichment and the chain-level figures share :class:`EnrichedChain` and its column
arrays (left whole while the chain-analytics work is in progress).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core import chain as core_chain
from aiots.core import conventions as cv
from aiots.core import options as opt
from aiots.services.analytics import quotes as qh
from aiots.services.analytics.pricing import GREEK_NAMES, TRADER_FIRST_ORDER, AmericanMethod
from aiots.services.analytics.surface import SliceQuotes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NS = cv.NS_PER_S
YEAR_NS = cv.NS_PER_YEAR
CONTRACT_MULTIPLIER = cv.CONTRACT_MULTIPLIER
EUROPEAN_MODEL = "black-scholes-merton"
AMERICAN_MODELS: dict[str, str] = {
    "bjerksund_stensland_2002": "bjerksund-stensland-2002",
    "baw": "barone-adesi-whaley",
    "binomial": "binomial-tree",
}
PARITY = "put_call_parity"
SPOT_CARRY = "spot_carry"
NO_IV = "NO_IV"
#: the surface fits out-of-the-money quotes with |delta| >= FIT_MIN_ABS_DELTA and |k| within
#: FIT_MAX_SD ATM standard deviations (atm_iv sqrt(t)); further wings are counted as FAR_WING
FIT_MIN_ABS_DELTA = 0.02
FIT_MAX_SD = 6.0
FAR_WING = "FAR_WING"
EXPIRED = "EXPIRED"
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
    #: continuous dividend yield of this symbol (settings), used to price American contracts
    dividend_yield: float = 0.0
    #: a last trade prices a contract without a two-sided quote only when younger than this
    max_last_age_ns: int = 900 * cv.NS_PER_S
    #: spot and quote times further apart than this are flagged out of sync
    spot_sync_tolerance_ns: int = 60 * cv.NS_PER_S


@dataclass(frozen=True)
class ChainTimes:
    """Times the stored chain does not carry: the spot's (0 = unknown) and each contract's last
    trade (aligned with the chain; 0 = unknown, which makes the last stale)."""

    spot_ts_ns: int = 0
    last_ts: I64 | None = None


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
    #: the continuous yield the pricer used per expiry (European: r - ln(F/S)/T; American: configured)
    q_used: dict[str, float]
    #: the same per contract (a mixed expiry prices each contract by its own style)
    q: F64
    #: ln(F/S)/T per expiry
    carry: dict[str, float]
    forward_source: dict[str, str]
    #: per contract: "quote", "last" or "" (see quotes.py)
    price_source: list[str]
    #: per contract: why it is left out of fits and skews ("" when it is used)
    excluded: list[str]
    european: npt.NDArray[np.bool_]
    exercise_style: str
    pricing_model: str
    spot_ts_ns: int
    spot_in_sync: bool
    spot_lag_s: float
    dividend_yield: float
    #: IV and Greeks for exposures: the contract's own, else the expiry's smile at its strike
    gex_gamma: F64
    gex_delta: F64
    gex_iv: F64
    gex_smile_filled: int

    @property
    def fit_ok(self) -> npt.NDArray[np.bool_]:
        """Contracts fits and skews may use: two-sided quote with a solved IV."""
        return np.array([not r for r in self.excluded], dtype=np.bool_)


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
    implied_carry: float
    forward_source: str
    quotes_used: int
    excluded: list[tuple[str, int]]


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
    excluded: list[tuple[str, int]]


def _parity_forward(
    strike: F64,
    is_call: npt.NDArray[np.bool_],
    mid: F64,
    spot: float,
    t: float,
    r: float,
    method: AmericanMethod,
    american: bool,
    q_american: float,
    refine: int = PARITY_REFINE,
) -> float:
    """The forward of one expiry from put-call parity (``aiots.core.chain.implied_forward``) on
    two-sided mids (``mid`` NaN elsewhere); NaN when no strike has both a call and a put mid.

    European premiums satisfy parity exactly. American premiums carry an early-exercise premium
    that biases it, so for them the estimate is refined ``refine`` times on the strikes nearest
    the money: each mid is turned into the European price at its American IV (under the
    configured yield ``q_american``) and parity is applied again.
    """
    kc, kp = strike[is_call], strike[~is_call]
    both, ic, ip = np.intersect1d(kc, kp, assume_unique=False, return_indices=True)
    cm, pm = mid[is_call][ic], mid[~is_call][ip]
    try:
        est = core_chain.implied_forward(both, cm, pm, t, r, spot=spot, n_near=PARITY_STRIKES)
    except ValueError:
        return math.nan
    if not american:
        return float(est.forward)
    ok = np.isfinite(cm) & np.isfinite(pm) & (cm > 0) & (pm > 0)
    near = np.flatnonzero(ok)[np.argsort(np.abs(cm[ok] - pm[ok]), kind="stable")[: PARITY_STRIKES * 2]]
    k, c, p = both[near], cm[near], pm[near]
    for _ in range(refine):
        prices = []
        for right, m in ((True, c), (False, p)):
            iv = opt.implied_vol(m, spot, k, t, r, q_american, right, style="american", method=method)
            prices.append(np.asarray(opt.bs_price(spot, k, t, r, iv, q_american, right), dtype=np.float64))
        try:
            est = core_chain.implied_forward(k, prices[0], prices[1], t, r, spot=spot, n_near=PARITY_STRIKES)
        except ValueError:
            break
    return float(est.forward)


def _smile_iv(strike: F64, iv: F64, at: F64) -> F64:
    """IV at strikes ``at`` from a smile (mean IV per listed strike, linear in strike, flat beyond)."""
    ok = np.isfinite(strike) & np.isfinite(iv) & (iv > 0)
    if not ok.any():
        return np.full(at.shape, np.nan)
    ks, inv = np.unique(strike[ok], return_inverse=True)
    vs = np.bincount(inv, weights=iv[ok], minlength=ks.size) / np.bincount(inv, minlength=ks.size)
    return np.asarray(np.interp(at, ks, vs), dtype=np.float64)


def chain_style(european: npt.NDArray[np.bool_], method: AmericanMethod) -> tuple[str, str]:
    """(exercise style, pricing model) of a chain: "european", "american" or "mixed"."""
    if european.size and european.all():
        return "european", EUROPEAN_MODEL
    if not european.any():
        return "american", AMERICAN_MODELS.get(method, method)
    return "mixed", f"{EUROPEAN_MODEL}+{AMERICAN_MODELS.get(method, method)}"


def enrich(
    chain: Any, cfg: AnalyticsConfig, now_ns: int | None = None, times: ChainTimes | None = None
) -> EnrichedChain:
    """Per-contract clean prices, forwards per expiry, IVs and Greeks by exercise style.

    ``chain`` is an ``aiots.services.storage.queries.OptionChain`` (or anything with its fields);
    ``times`` adds the spot time and the last-trade times the chain does not carry.
    """
    times = times or ChainTimes()
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
    clean = qh.clean_prices(bid, ask, last, times.last_ts, as_of, cfg.max_last_age_ns)
    mid = clean.price
    two_sided = clean.two_sided
    quote_mid = np.where(two_sided, mid, np.nan)
    european = np.array([cv.exercise_style(str(o)) == "european" for o in chain.occ], dtype=np.bool_)
    style, model = chain_style(european, cfg.american_method)
    exp_ns = {e: cv.expiry_ns(e) for e in set(expiries)}
    t = np.array([(exp_ns[e] - as_of) / YEAR_NS for e in expiries], dtype=np.float64)
    r = cfg.rate
    q_am = cfg.dividend_yield
    forward: dict[str, float] = {}
    carry: dict[str, float] = {}
    source: dict[str, str] = {}
    q_used: dict[str, float] = {}
    q = np.full(n, q_am)
    exp_arr = np.asarray(expiries)
    for e in sorted(set(expiries)):
        sel = exp_arr == e
        te = float(t[sel][0])
        eu = bool(european[sel].all())
        f = math.nan
        if te > 0 and math.isfinite(spot):
            f = _parity_forward(
                strike[sel], is_call[sel], quote_mid[sel], spot, te, r, cfg.american_method, not eu, q_am
            )
        src = PARITY
        if not (math.isfinite(f) and f > 0):
            f = spot * math.exp((r - q_am) * te) if te > 0 else math.nan
            src = SPOT_CARRY
        c = math.log(f / spot) / te if te > 0 and math.isfinite(f) and spot > 0 else math.nan
        forward[e], carry[e], source[e] = f, c, src
        q_eu = r - c if math.isfinite(c) else q_am
        q_used[e] = q_eu if eu else q_am
        q[sel & european] = q_eu
    iv = np.full(n, np.nan)
    reasons = list(clean.reason)
    for i in range(n):
        if reasons[i] == qh.LAST_PRICE:
            reasons[i] = ""
    for i in np.flatnonzero(t <= 0).tolist():
        reasons[i] = EXPIRED
    priced = np.array([not x for x in reasons], dtype=np.bool_) & np.isfinite(mid)
    greeks = {g: np.full(n, np.nan) for g in (*GREEK_NAMES, "price")}
    if priced.any() and math.isfinite(spot):
        for eu_group in (True, False):
            idx = np.flatnonzero(priced & (european == eu_group))
            if not idx.size:
                continue
            if eu_group:
                sol, codes = opt.implied_vol(
                    mid[idx], spot, strike[idx], t[idx], r, q[idx], is_call[idx], style="european", return_reason=True
                )
            else:
                sol, codes = opt.implied_vol(
                    mid[idx], spot, strike[idx], t[idx], r, q[idx], is_call[idx],
                    style="american", return_reason=True, method=cfg.american_method,
                )  # fmt: skip
            iv[idx] = sol
            for j, code in zip(idx.tolist(), np.asarray(codes).tolist(), strict=True):
                if code != opt.OK:
                    reasons[j] = str(opt.REASONS.get(int(code), f"REASON_{code}"))
            good = idx[np.isfinite(iv[idx])]
            if not good.size:
                continue
            args = (spot, strike[good], t[good], r, iv[good], q[good], is_call[good])
            if eu_group:
                raw = opt.bs_greeks(*args)
                greeks["price"][good] = np.asarray(opt.bs_price(*args), dtype=np.float64)
            else:
                raw = opt.american_greeks(*args, method=cfg.american_method)
            trader = opt.trader_units(raw)
            for g in raw.dtype.names or ():
                src_arr = trader if g in TRADER_FIRST_ORDER else raw
                greeks[g][good] = src_arr[g]
    excluded = [
        reasons[i] or (qh.LAST_PRICE if clean.source[i] == qh.LAST else "") or ("" if np.isfinite(iv[i]) else NO_IV)
        for i in range(n)
    ]
    # exposures: a contract with open interest but no IV of its own takes its expiry's smile IV
    oi = np.nan_to_num(np.asarray(chain.open_interest, dtype=np.float64), nan=0.0)
    gex_iv = iv.copy()
    fill = ~np.isfinite(iv) & (t > 0) & (oi > 0)
    fit_ok = np.array([not x for x in excluded], dtype=np.bool_)
    for e in sorted(set(exp_arr[fill].tolist())):
        sel = exp_arr == e
        f_idx = np.flatnonzero(fill & sel)
        gex_iv[f_idx] = _smile_iv(strike[sel & fit_ok], iv[sel & fit_ok], strike[f_idx])
    filled = np.flatnonzero(fill & np.isfinite(gex_iv))
    gex_gamma = np.asarray(greeks["gamma"], dtype=np.float64).copy()
    gex_delta = np.asarray(greeks["delta"], dtype=np.float64).copy()
    if filled.size and math.isfinite(spot):
        fg = opt.bs_greeks(spot, strike[filled], t[filled], r, gex_iv[filled], q[filled], is_call[filled])
        gex_gamma[filled] = fg["gamma"]
        gex_delta[filled] = fg["delta"]
    lag_s = (as_of - times.spot_ts_ns) / NS if times.spot_ts_ns > 0 and as_of > 0 else math.nan
    in_sync = math.isfinite(lag_s) and abs(lag_s) * NS <= cfg.spot_sync_tolerance_ns
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
        open_interest=oi,
        oi_as_of=str(oi_valid.max()) if oi_valid.size else "",
        t=t,
        iv=iv,
        iv_reason=reasons,
        greeks=greeks,
        forward=forward,
        q_used=q_used,
        q=q,
        carry=carry,
        forward_source=source,
        price_source=list(clean.source),
        excluded=excluded,
        european=european,
        exercise_style=style,
        pricing_model=model,
        spot_ts_ns=int(times.spot_ts_ns),
        spot_in_sync=bool(in_sync),
        spot_lag_s=float(lag_s),
        dividend_yield=q_am,
        gex_gamma=gex_gamma,
        gex_delta=gex_delta,
        gex_iv=gex_iv,
        gex_smile_filled=int(filled.size),
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


def _iv_at_delta(
    strike: F64, iv: F64, target: float, spot: float, t: float, r: float, q: float, call: bool
) -> tuple[float, float]:
    """Smile IV at the strike whose BSM spot delta, at that strike's own IV, equals ``target``.

    The smile is ``iv`` linear in strike between the listed ``strike``s (one side: calls for a call
    delta). The strike is the root of ``g(K) = strike_from_delta(target, sigma(K)) - K``: a sign
    change over the listed strikes (the one nearest the flat-smile answer) refined by Illinois
    regula falsi. Returns (IV, strike); NaNs when the delta is not reached within the listed strikes.
    """
    ok = np.isfinite(strike) & np.isfinite(iv) & (iv > 0)
    if ok.sum() < 2 or not (t > 0 and math.isfinite(spot)):
        return math.nan, math.nan
    ks, inv = np.unique(strike[ok], return_inverse=True)
    vs = np.bincount(inv, weights=iv[ok], minlength=ks.size) / np.bincount(inv, minlength=ks.size)

    def g(k: F64) -> F64:
        sig = np.interp(k, ks, vs)
        return np.asarray(core_chain.strike_from_delta(target, spot, t, r, sig, q, call), dtype=np.float64) - k

    gk = g(ks)
    flips = np.flatnonzero(np.isfinite(gk[:-1]) & np.isfinite(gk[1:]) & (np.sign(gk[:-1]) * np.sign(gk[1:]) <= 0))
    if flips.size == 0:
        return math.nan, math.nan
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
    return float(np.interp(x, ks, vs)), float(x)


@dataclass(frozen=True)
class Skew:
    """Quoted 25-delta figures of one expiry from two-sided quotes (NaN when not reached)."""

    atm_iv: float
    iv_call25: float
    iv_put25: float
    k_call25: float
    k_put25: float

    @property
    def rr25(self) -> float:
        return self.iv_call25 - self.iv_put25

    @property
    def bf25(self) -> float:
        return (self.iv_call25 + self.iv_put25) / 2.0 - self.atm_iv


def expiry_skew(ch: EnrichedChain, e: str, rate: float) -> Skew:
    """ATM IV and the 25-delta call/put IVs and strikes of expiry ``e`` over usable quotes only.

    Deltas are BSM spot deltas with the yield the pricer used (``q_used``), for either style.
    """
    exp_arr = np.asarray(ch.expiry)
    sel = (exp_arr == e) & ch.fit_ok
    k, c, iv = ch.strike[sel], ch.is_call[sel], ch.iv[sel]
    te = float(ch.t[exp_arr == e][0])
    qe = ch.q_used[e]
    atm = _atm_iv(k, c, iv, ch.forward[e])
    ivc, kc = _iv_at_delta(k[c], iv[c], DELTA_25, ch.spot, te, rate, qe, True)
    ivp, kp = _iv_at_delta(k[~c], iv[~c], -DELTA_25, ch.spot, te, rate, qe, False)
    return Skew(atm, ivc, ivp, kc, kp)


def _expiry_stats(ch: EnrichedChain, e: str, exp_arr: npt.NDArray[np.str_], rate: float) -> ExpiryStats:
    sel = exp_arr == e
    k, c = ch.strike[sel], ch.is_call[sel]
    use = ch.fit_ok[sel]
    mid = np.where(use, ch.mid[sel], np.nan)
    te = float(ch.t[sel][0])
    fwd = ch.forward[e]
    sk = expiry_skew(ch, e, rate)
    calls = {float(kk): float(m) for kk, m in zip(k[c], mid[c], strict=True) if np.isfinite(m)}
    puts = {float(kk): float(m) for kk, m in zip(k[~c], mid[~c], strict=True) if np.isfinite(m)}
    both = sorted(set(calls) & set(puts), key=lambda kk: abs(kk - fwd) if math.isfinite(fwd) else 0.0)
    straddle = calls[both[0]] + puts[both[0]] if both else math.nan
    return ExpiryStats(
        expiry=e,
        dte=te * 365.0,
        atm_iv=sk.atm_iv,
        rr25=sk.rr25,
        bf25=sk.bf25,
        expected_move_straddle=straddle,
        expected_move_iv=ch.spot * sk.atm_iv * math.sqrt(te) if te > 0 else math.nan,
        max_pain=max_pain(k, c, ch.open_interest[sel]),
        forward=fwd,
        implied_carry=ch.carry[e],
        forward_source=ch.forward_source[e],
        quotes_used=int(use.sum()),
        excluded=qh.exclusion_counts(x for x, s_ in zip(ch.excluded, sel.tolist(), strict=True) if s_),
    )


def exposures(ch: EnrichedChain) -> tuple[list[StrikeExposureRow], float, float]:
    """(GEX/DEX per strike, total GEX, total DEX) in dollars (see module docstring)."""
    s = ch.spot
    sign = np.where(ch.is_call, 1.0, -1.0)
    gamma = np.nan_to_num(ch.gex_gamma)
    delta = np.nan_to_num(ch.gex_delta)
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
    ok = np.isfinite(ch.gex_iv) & (ch.t > 0) & (ch.open_interest > 0)
    if not ok.any() or not math.isfinite(ch.spot):
        return math.nan
    q = ch.q[ok]
    k, t, iv, call = ch.strike[ok], ch.t[ok], ch.gex_iv[ok], ch.is_call[ok]
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
    """(rank, percentile, days) of ``current`` against the daily ATM IV ``history``
    (``conventions.iv_rank`` / ``conventions.iv_percentile``; days = finite history points)."""
    h = np.asarray(history, dtype=np.float64)
    return cv.iv_rank(current, h), cv.iv_percentile(current, h), int(np.isfinite(h).sum())


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
        excluded=qh.exclusion_counts(ch.excluded),
    )


def surface_quotes(ch: EnrichedChain, rate: float) -> list[SliceQuotes]:
    """Per unexpired expiry: out-of-the-money usable IVs at k = ln(K/F) within the fit band
    (FIT_MIN_ABS_DELTA, FIT_MAX_SD; further wings are counted as FAR_WING), with the quoted
    25-delta strikes (as k) and risk reversal the fitted slice is checked against."""
    out: list[SliceQuotes] = []
    exp_arr = np.asarray(ch.expiry)
    for e in sorted(set(ch.expiry)):
        sel = exp_arr == e
        te = float(ch.t[sel][0])
        fwd = ch.forward[e]
        if not (te > 0 and math.isfinite(fwd) and fwd > 0):
            continue
        use = sel & ch.fit_ok
        kk = np.log(ch.strike[use] / fwd)
        otm = np.where(ch.is_call[use], kk >= 0, kk < 0)
        sk = expiry_skew(ch, e, rate)
        wing = np.abs(np.nan_to_num(ch.greeks["delta"][use])) >= FIT_MIN_ABS_DELTA
        if math.isfinite(sk.atm_iv):
            wing &= np.abs(kk) <= FIT_MAX_SD * sk.atm_iv * math.sqrt(te)
        k_c = math.log(sk.k_call25 / fwd) if math.isfinite(sk.k_call25) else math.nan
        k_p = math.log(sk.k_put25 / fwd) if math.isfinite(sk.k_put25) else math.nan
        far = int((otm & ~wing).sum())
        out.append(
            SliceQuotes(
                e, te, kk[otm & wing], ch.iv[use][otm & wing], k_c, k_p, sk.rr25, ((FAR_WING, far),) if far else ()
            )
        )
    return out
