"""A lower bound of a modelled chain's ATM implied vol, without pricing or solving anything.

``cheap_volatility`` buys premium only when the ATM IV is at most ``iv_rv_max`` x the realised vol.
On a modelled chain, priced at one IV ``sigma`` well above that level on most bars, the answer is
known before the ATM read (two BS2002 prices and two IV solves, ~9 % of a SPY replay): the read
can only return an IV above the level. :func:`atm_iv_exceeds` proves that, or says it can't.

The read (``aiots.services.signals.atm_iv``: ``traded_atm_iv``, or the modelled book's
``first_atm_iv``, the same numbers) takes the first expiry in the DTE window whose nearest strike
has a two-sided call and put, and averages the European IVs of their mids that solve. The proof,
for every contract the read can use (the strike nearest the spot: within half a strike step; an
expiry in the window: ``t`` in ``[t_lo, t_hi]`` years):

* **The mid is at least the European value at ``sigma`` less the quote's rounding.** The model's
  price (American BS2002 held at its lower bounds, or European held at intrinsic) is at least the
  European value ``E(sigma)``; the bid is the price less the half-spread floored to the tick, the
  ask the price plus it ceiled, each then rounded to 1/``price_scale``: the mid is at least
  ``p - (tick (1 + tick_eps) + 1/price_scale) / 2``.
* **``E`` grows at least as fast as a least vega.** ``E(sigma) - E(level) >= (sigma - level) V``
  with ``V = S e^{-q t_hi} sqrt(t_lo) phi(d)``, ``d`` bounding ``|d1|`` over the strikes, times and
  sigmas in play: ``|d1| <= X / (level sqrt(t_lo)) + |r - q| sqrt(t_hi) / level + sigma sqrt(t_hi) / 2``
  with ``X = ln(S / (S - step/2))`` (the largest ``|ln(S/K)|``).
* **So each side is two-sided and its IV, where it solves, is above the level**, when ``G = (sigma -
  level) V`` exceeds the rounding plus :data:`PRICE_EPS` (S + K) (the pricer's and the solver's
  rounding; the IV solver round-trips to ~1e-13) and both quotes' bids are provably positive
  (``G (1 - half_frac)`` and ``G - min_half`` above a tick). Nearest strikes tied at half a step
  are both covered; an expiry whose IVs all fail leaves the read to a later expiry, covered too.

Units: dollars per share, years (ACT/365 on ns), annual rates and vols. Any non-finite or
out-of-range input proves nothing (False: the caller reads the IV).
"""

from __future__ import annotations

import math

PRICE_EPS = 1e-9  # x (S + K): the pricer's and the IV solver's rounding (both ~1e-13 relative)
STRIKE_SLACK = 1e-9  # relative widening of the half-step distance (strikes rounded to 1e-6)
TIME_SLACK = 1e-9  # relative narrowing of t_lo and widening of t_hi (float ns near 2e18: 256 ns steps)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def atm_iv_exceeds(
    level: float,
    spot: float,
    sigma: float,
    rate: float,
    dividend_yield: float,
    step: float,
    t_lo: float,
    t_hi: float,
    tick: float,
    tick_eps: float,
    price_scale: float,
    half_frac: float,
    min_half: float,
) -> bool:
    """Whether every ATM IV the read of a modelled chain (spot ``spot``, priced at ``sigma``,
    ``rate`` and ``dividend_yield``, solved at the same; strikes ``step`` apart around the spot;
    expiries ``t_lo..t_hi`` years away; quotes by the tick rules) can return is above ``level``."""
    # (comparisons only: each is False for a NaN, so a NaN anywhere proves nothing)
    if not (0.0 < level < sigma < math.inf and 0.0 < t_lo <= t_hi < math.inf and 0.0 < step < spot < math.inf):
        return False
    if not (0.0 <= dividend_yield < math.inf and -math.inf < rate < math.inf and 0.0 <= tick_eps < 1.0):
        return False
    if not (
        0.0 < tick < math.inf and 0.0 < price_scale < math.inf and 0.0 <= half_frac < 1.0 and 0.0 <= min_half < math.inf
    ):
        return False
    vega = least_vega(level, spot, sigma, rate, dividend_yield, step, t_lo, t_hi)
    half = 0.5 * step * (1.0 + STRIKE_SLACK)
    gain = (sigma - level) * vega  # a lower bound of E(sigma) - E(level), so of E(sigma) too
    slack = PRICE_EPS * (2.0 * spot + half)  # x (S + K), K <= S + half
    rounding = 0.5 * (tick * (1.0 + tick_eps) + 1.0 / price_scale)
    above = gain > rounding + slack  # mid > E(level): each IV that solves is above the level
    bid_side = tick * (1.0 + tick_eps) + 1.0 / price_scale + slack  # a bid priced at least this is > 0
    two_sided = gain * (1.0 - half_frac) > bid_side and gain - min_half > bid_side
    return above and two_sided


def least_vega(
    level: float, spot: float, sigma: float, rate: float, dividend_yield: float, step: float, t_lo: float, t_hi: float
) -> float:
    """A lower bound of the Black-Scholes vega (dollars per unit vol) of every option with a strike
    within half a ``step`` of ``spot``, ``t_lo..t_hi`` years to expiry, at any vol in ``[level,
    sigma]`` (valid inputs: 0 < level < sigma, 0 < t_lo <= t_hi, 0 < step < spot, yield >= 0)."""
    half = 0.5 * step * (1.0 + STRIKE_SLACK)
    x = math.log(spot / (spot - half))  # >= |ln(S/K)| for |K - S| <= half
    lo, hi = t_lo * (1.0 - TIME_SLACK), t_hi * (1.0 + TIME_SLACK)
    rt_lo, rt_hi = math.sqrt(lo), math.sqrt(hi)
    d = x / (level * rt_lo) + abs(rate - dividend_yield) * rt_hi / level + 0.5 * sigma * rt_hi  # >= |d1|
    return spot * math.exp(-dividend_yield * hi - 0.5 * d * d) * rt_lo * INV_SQRT_2PI
