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

from aiots.core import options as opt
from aiots.services.signals.chainview import QuoteModel
from aiots.services.signals.gain_bound import MAX_CONDITION, SIGMA_SLACK, gain_and_delta_bounds

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
        bs = np.asarray(opt.bs_price(S, K, T, r, sig, 0.0, True), dtype=np.float64)
        # the mid's range (the price is BS held at intrinsic: BS > S - K e^{-rT} >= S - K for r >= 0)
        m_lo = bs - eps - (0.5 * model.tick + QUOTE_EPS)
        m_hi = np.maximum(bs, S - K) + eps + (0.5 * model.tick + QUOTE_EPS)
        h_lo = np.maximum(model.half_spread_frac * (bs - eps), model.min_half_spread)
        thr_lo = spread_cover * (h_lo - 2.0 * QUOTE_EPS) * (1.0 - 1e-12)  # cover x half of the least spread
        # the European IV's range [sa, sb]: the view's IV moved by twice the mid's worst offset over
        # the vega, checked by the mean value theorem: BS moves by at least the least vega over the
        # range times the move (vega = S sqrt(T) phi(d1), phi least where |d1| is largest: at an end,
        # as d1 = A/x + x/2 is convex in x = sigma sqrt(T) for A > 0 and increasing for A <= 0)
        rt = np.sqrt(T)
        A = math.log(S) - np.log(K) + r * T
        srt = sig * rt
        d1 = A / srt + 0.5 * srt
        s_rt_phi = S * rt * INV_SQRT_2PI
        move = WIDEN * (m_hi - m_lo + 4.0 * eps) / (s_rt_phi * np.exp(-0.5 * d1 * d1)) + 1e-6 * sig
        sa, sb = sig - move, sig + move
        a_lo, a_hi = sa * rt, sb * rt
        far = np.maximum(np.abs(A / a_lo + 0.5 * a_lo), np.abs(A / a_hi + 0.5 * a_hi)) + 1e-9
        vega_min = s_rt_phi * np.exp(-0.5 * far * far)
        shift = move * vega_min * (1.0 - 1e-9)  # BS(sig) - BS(sa) and BS(sb) - BS(sig), at least
        bracketed = (sa > 0) & (bs + eps - shift <= m_lo - eps) & (bs - eps + shift >= m_hi + eps)
        # the American IV's bracket (no early-exercise premium) where the price pins sigma
        conditioned = m_hi <= MAX_CONDITION * sa * vega_min * (1.0 - 1e-9)
        lo, hi = sa * (1.0 - SIGMA_SLACK), sb * (1.0 + SIGMA_SLACK)
        bound, dlo, dhi = gain_and_delta_bounds(S, K, T, r, 0.0, True, lo, hi, dS, trading_days, delta_max)
        # not near: the European delta over [lo, hi] (holding [sa, sb]) misses the prefilter band
        not_near = (dhi < delta_min - prefilter_margin - DELTA_EPS) | (dlo > delta_max + prefilter_margin + DELTA_EPS)
        # cannot pay at the American IV: the gain bound, or outside the band itself
        out_of_band = (dhi < delta_min - DELTA_EPS) | (dlo > delta_max + DELTA_EPS)
        cannot_pay = conditioned & ((bound <= thr_lo) | out_of_band)
    settled: npt.NDArray[np.bool_] = bracketed & (not_near | cannot_pay)
    return settled
