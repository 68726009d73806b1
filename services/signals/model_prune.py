"""Refusing an idea on a modelled chain of calls before pricing it: a bound on every contract.

On the backtest's modelled chains most ideas end with every contract unable to pay its costs
(:mod:`aiots.services.signals.gain_bound` prunes them all). Finding that out the generic way prices
every call of the DTE window (Bjerksund-Stensland 2002), solves its European IV, prefilters by delta
and bounds the gain: ~0.5 ms an idea. Here the same conclusion is reached from the view's pricing
model alone, for each contract, without its quote:

* **The quote.** A modelled call with no dividend yield is worth the Black-Scholes value at the
  view's IV, held at intrinsic (an American call without dividends is never exercised early), so
  its model price ``p`` lies in ``[BS - e, max(BS, S - K) + e]`` (``e``: vectorised-vs-scalar
  rounding, :data:`PRICE_EPS` x (S + K)). The bid and the ask are ``p -+ h`` rounded outward to the
  tick (``h = max(frac x p, min)``), then to 1e-6: the mid is within half a tick (+ 1e-6) of ``p``
  and the spread is at least ``2 h`` less the rounding.
* **Its European IV** lies in ``(sigma_a, sigma_b)`` around the view's IV: checked, not assumed,
  by pricing both ends (Black-Scholes is increasing in sigma), with :data:`PRICE_EPS` for the
  solver's and the pricer's rounding; inside that range the price is strictly between the
  no-arbitrage bounds, so the IV exists.
* **Not near the delta band:** the European delta over ``[sigma_a, sigma_b]`` (the d1 range of
  :func:`~aiots.services.signals.gain_bound.gain_and_delta_bounds`) misses selection's prefilter
  band by :data:`DELTA_EPS`: selection drops the contract before any solve.
* **Or it cannot pay:** where the IV pins the price (the condition number of
  :mod:`~aiots.services.signals.gain_bound`), the American IV is the European one to
  ``SIGMA_SLACK`` (no early-exercise premium), so it lies in ``[sigma_a, sigma_b]`` widened by it; the
  gain bound over that bracket is at most ``spread_cover`` half-spreads at the least spread the quote
  can have, or the delta over it misses the band: at its solved IV the contract is dropped by the
  band or rejected by the levels' first test.

A contract is *settled* when one of these holds. When every contract of the window is settled,
selection's answer depends only on whether some contract passes the liquidity/spread filter, lies
near the band and has an American IV (one witness, priced and solved exactly), and on the event
and trading-time checks: :meth:`ContractSelector.select` takes that path. Calls of a modelled view
with no yield are priced one row at a time by the core whatever the batch (its no-early-exercise
branch), so pricing fewer of them, or in other batches, changes no price.

Units: dollars per share, years, sigma per sqrt(year).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from aiots.core.conventions import SESSIONS_PER_YEAR
from aiots.services.signals.chainview import QuoteModel
from aiots.services.signals.gain_bound import (
    ABS_SLACK,
    BOUND_SLACK,
    D_SLACK,
    DAYS_PER_YEAR,
    MAX_CONDITION,
    SIGMA_SLACK,
    _ncdf,
    _npdf,
)

F64 = npt.NDArray[np.float64]

PRICE_EPS = 1e-9  # relative to S + K: vectorised vs scalar Black-Scholes and the IV solver's residual
QUOTE_EPS = 1e-6  # dollars: the quotes' rounding to 1e-6 and the tick rounding's 1e-9 tick slack
DELTA_EPS = 1e-9  # |delta| margin (erfc rounding ~1e-16)
WIDEN = 2.0  # sigma_a, sigma_b: the view's IV -+ WIDEN x the IV move of the mid's worst offset
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def settled_calls(
    model: QuoteModel,
    S: float,
    K: F64,
    T: F64,
    r: float,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
) -> npt.NDArray[np.bool_]:
    """Which calls (strikes ``K``, years ``T``) of a modelled view with no yield are provably dropped
    by selection's delta prefilter or provably unable to pay ``spread_cover`` half-spreads (see the
    module docstring), for an idea on spot ``S`` (the view's own spot) with projected move ``dS``
    over ``trading_days``, IVs solved at rate ``r`` and no yield."""
    n = len(K)
    ok_inputs = model.spot == S and model.rate == r and r >= 0 and S > 0 and model.iv > 0
    if not (ok_inputs and math.isfinite(model.iv) and n):
        return np.zeros(n, dtype=np.bool_)
    sig = model.iv
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        eps = PRICE_EPS * (S + K)
        rt = np.sqrt(T)
        A = math.log(S) - np.log(K) + r * T
        er = np.exp(-r * T)
        srt = sig * rt
        # Black-Scholes at the view's IV (to ~1e-15 (S + K) of the core's: far inside eps)
        d1 = A / srt + 0.5 * srt
        nd = _ncdf(np.concatenate((d1, d1 - srt)))
        bs = S * nd[:n] - K * er * nd[n:]
        # the mid's range (the price is BS held at intrinsic: BS > S - K e^{-rT} >= S - K for r >= 0)
        m_lo = bs - eps - (0.5 * model.tick + QUOTE_EPS)
        m_hi = np.maximum(bs, S - K) + eps + (0.5 * model.tick + QUOTE_EPS)
        h_lo = np.maximum(model.half_spread_frac * (bs - eps), model.min_half_spread)
        thr_lo = spread_cover * (h_lo - 2.0 * QUOTE_EPS) * (1.0 - 1e-12)  # cover x half of the least spread
        # the European IV's range [sa, sb]: the view's IV moved by twice the mid's worst offset over
        # the vega, checked by the mean value theorem: BS moves by at least the least vega over the
        # range times the move (vega = S sqrt(T) phi(d1), phi least where |d1| is largest: at an end,
        # as d1 = A/x + x/2 is convex in x = sigma sqrt(T) for A > 0 and increasing for A <= 0)
        s_rt_phi = S * rt * INV_SQRT_2PI
        move = WIDEN * (m_hi - m_lo + 4.0 * eps) / (s_rt_phi * np.exp(-0.5 * d1 * d1)) + 1e-6 * sig
        sa, sb = sig - move, sig + move
        ab = np.concatenate((sa * rt, sb * rt))
        AA = np.concatenate((A, A))
        x, half = AA / ab, 0.5 * ab
        d1ab = x + half
        far = np.maximum(np.abs(d1ab[:n]), np.abs(d1ab[n:])) + 1e-9
        vega_min = s_rt_phi * np.exp(-0.5 * far * far)
        shift = move * vega_min * (1.0 - 1e-9)  # BS(sig) - BS(sa) and BS(sb) - BS(sig), at least
        bracketed = (sa > 0) & (bs + eps - shift <= m_lo - eps) & (bs - eps + shift >= m_hi + eps)
        # the American IV's bracket (no early-exercise premium) where the price pins sigma
        conditioned = m_hi <= MAX_CONDITION * sa * vega_min * (1.0 - 1e-9)
        bound, dlo, dhi = no_yield_bounds(
            S, K, T, A, rt, er, r, sa * (1.0 - SIGMA_SLACK), sb * (1.0 + SIGMA_SLACK), dS, trading_days, delta_max
        )
        # not near: the European delta over the bracket (holding [sa, sb]) misses the prefilter band
        not_near = (dhi < delta_min - prefilter_margin - DELTA_EPS) | (dlo > delta_max + prefilter_margin + DELTA_EPS)
        # cannot pay at the American IV: the gain bound, or outside the band itself
        out_of_band = (dhi < delta_min - DELTA_EPS) | (dlo > delta_max + DELTA_EPS)
        cannot_pay = conditioned & ((bound <= thr_lo) | out_of_band)
    settled: npt.NDArray[np.bool_] = bracketed & (not_near | cannot_pay)
    return settled


def no_yield_bounds(
    S: float,
    K: F64,
    T: F64,
    A: F64,
    rt: F64,
    er: F64,
    r: float,
    sigma_lo: F64,
    sigma_hi: F64,
    dS: float,
    trading_days: float,
    delta_max: float,
    is_call: bool = True,
) -> tuple[F64, F64, F64]:
    """:func:`~aiots.services.signals.gain_bound.gain_and_delta_bounds` for calls (``is_call``) or
    puts with no yield and ``r >= 0``, given ``A = ln S - ln K + r T``, ``sqrt(T)`` and
    ``exp(-r T)``: the same operations on each element (the yield's factors are 1 and its terms 0),
    stacked through fewer ufunc calls."""
    n = len(K)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ab = np.concatenate((sigma_lo * rt, sigma_hi * rt))
        a, b = ab[:n], ab[n:]
        x, half = np.concatenate((A, A)) / ab, 0.5 * ab
        d1ab, d2ab = x + half, x - half
        d1a, d1b, d2a, d2b = d1ab[:n], d1ab[n:], d2ab[:n], d2ab[n:]
        root = np.sqrt(2.0 * np.abs(A))
        inside = (a < root) & (root < b)
        d1min = np.where((A > 0) & inside, root, np.minimum(d1a, d1b)) - D_SLACK
        d1max = np.maximum(d1a, d1b) + D_SLACK
        d2min = np.minimum(d2a, d2b) - D_SLACK
        nds = _ncdf(np.concatenate((d1min, d1max, d2min if is_call else -d2min)))
        n1min, n1max, nd2 = nds[:n], nds[n : 2 * n], nds[2 * n :]
        dlo, dhi = (n1min, n1max) if is_call else (n1min - 1.0, n1max - 1.0)
        t_delta = np.minimum(dhi * dS if dS >= 0 else dlo * dS, delta_max * abs(dS))
        spans_zero = (d1min <= 0) & (d1max >= 0)
        abs_min, abs_max = np.abs(d1min), np.abs(d1max)
        phis = _npdf(np.concatenate((np.minimum(abs_min, abs_max), np.maximum(abs_min, abs_max))))
        phi_max = np.where(spans_zero, INV_SQRT_2PI, phis[:n])
        phi_min = phis[n:]
        t_gamma = 0.5 * (phi_max / (S * a)) * dS * dS
        decay = -S * phi_min * a / (2.0 * T)  # the decay term's largest value
        theta = decay - r * K * er * nd2 if is_call else decay + r * K * er * nd2
        t_theta = theta / DAYS_PER_YEAR * DAYS_PER_YEAR / SESSIONS_PER_YEAR * trading_days
        margin = BOUND_SLACK * (np.abs(t_delta) + np.abs(t_gamma) + np.abs(t_theta)) + ABS_SLACK
        out = t_delta + t_gamma + t_theta + margin
    bounded = (T > 0) & (a > 0) & (b >= a)
    return (
        np.where(bounded & np.isfinite(out), out, np.nan),
        np.where(bounded, dlo, np.nan),
        np.where(bounded, dhi, np.nan),
    )


def settled_puts(
    model: QuoteModel,
    S: float,
    K: F64,
    T: F64,
    r: float,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
) -> npt.NDArray[np.bool_]:
    """:func:`settled_calls` for the puts of a modelled view with no yield (American: the model price
    lies between the European value held at intrinsic and the European value plus the largest
    early-exercise premium ``K (1 - e^{-rT})``, and so does the American IV's bracket, as in
    :func:`~aiots.services.signals.gain_bound.iv_bracket`)."""
    n = len(K)
    ok_inputs = model.spot == S and model.rate == r and r >= 0 and S > 0 and model.iv > 0
    if not (ok_inputs and math.isfinite(model.iv) and n):
        return np.zeros(n, dtype=np.bool_)
    sig = model.iv
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        eps = PRICE_EPS * (S + K)
        rt = np.sqrt(T)
        A = math.log(S) - np.log(K) + r * T
        er = np.exp(-r * T)
        srt = sig * rt
        d1 = A / srt + 0.5 * srt
        nd = _ncdf(np.concatenate((-(d1 - srt), -d1)))
        bs = K * er * nd[:n] - S * nd[n:]  # the European put at the view's IV
        eep = K * (1.0 - er)
        quote = 0.5 * model.tick + QUOTE_EPS
        m_lo = np.maximum(bs, K - S) - eps - quote
        m_hi = bs + eep + eps + quote
        h_lo = np.maximum(model.half_spread_frac * (m_lo + quote), model.min_half_spread)
        thr_lo = spread_cover * (h_lo - 2.0 * QUOTE_EPS) * (1.0 - 1e-12)
        # the American IV lies in [IV_eu(mid - eep - PRICE_SLACK mid), IV_eu(mid)] (iv_bracket):
        # sigma ends whose European puts are below / above those prices, by the mean value theorem
        low_target = m_lo - eep * (1.0 + 1e-12) - 1e-9 * m_hi - eps  # PRICE_SLACK = 1e-9
        s_rt_phi = S * rt * INV_SQRT_2PI
        vega_m = s_rt_phi * np.exp(-0.5 * d1 * d1)
        move_lo = WIDEN * np.maximum(bs - low_target + 2.0 * eps, 0.0) / vega_m + 1e-6 * sig
        move_hi = WIDEN * np.maximum(m_hi - bs + 2.0 * eps, 0.0) / vega_m + 1e-6 * sig
        sa, sb = sig - move_lo, sig + move_hi
        ab = np.concatenate((sa * rt, sb * rt))
        d1ab = np.concatenate((A, A)) / ab + 0.5 * ab
        far = np.maximum(np.abs(d1ab[:n]), np.abs(d1ab[n:])) + 1e-9
        vega_min = s_rt_phi * np.exp(-0.5 * far * far)
        bracketed = (
            (sa > 0)
            & (low_target > 0)
            & (bs + eps - move_lo * vega_min * (1.0 - 1e-9) <= low_target - eps)
            & (bs - eps + move_hi * vega_min * (1.0 - 1e-9) >= m_hi + eps)
        )
        conditioned = m_hi <= MAX_CONDITION * sa * vega_min * (1.0 - 1e-9)
        bound, dlo, dhi = no_yield_bounds(
            S,
            K,
            T,
            A,
            rt,
            er,
            r,
            sa * (1.0 - SIGMA_SLACK),
            sb * (1.0 + SIGMA_SLACK),
            dS,
            trading_days,
            delta_max,
            is_call=False,
        )
        lo_abs, hi_abs = -dhi, -dlo  # |delta| of a put
        not_near = (hi_abs < delta_min - prefilter_margin - DELTA_EPS) | (
            lo_abs > delta_max + prefilter_margin + DELTA_EPS
        )
        out_of_band = (hi_abs < delta_min - DELTA_EPS) | (lo_abs > delta_max + DELTA_EPS)
        cannot_pay = conditioned & ((bound <= thr_lo) | out_of_band)
    settled: npt.NDArray[np.bool_] = bracketed & (not_near | cannot_pay)
    return settled
