"""A provable upper bound of the projected option gain before the American IV solve.

Contract selection rejects a contract whose projected gain ``dv = delta*dS + gamma*dS^2/2 +
theta_trading_day*days`` (BSM Greeks at the contract's American implied vol) cannot pay
``spread_cover`` half-spreads. On modelled SPY chains that rejects ~86 % of the contracts that reach
the costly American solve. This module bounds ``dv`` from above **without** that solve, so selection
solves only the contracts the bound cannot rule out; the decision is unchanged because a pruned
contract is one that would have been rejected (or is outside the delta band, where it is dropped
anyway).

The bound rests on an implied-vol bracket and interval arithmetic of the BSM Greeks:

* **Bracket** ``sigma_lo <= sigma_am <= sigma_hi`` from the European implied vols: the American
  price is at least the European one at every sigma (the core's American solver is bracketed above
  by the European IV of the price for this reason), and, for ``r >= 0`` and ``q >= 0``, at most the
  European one plus the largest early-exercise premium, ``K (1 - e^{-rT})`` for a put and
  ``S (1 - e^{-qT})`` for a call (a lower bound of the American price such as Bjerksund-Stensland
  2002 stays below it too); with no premium the American IV is the European one. A negative rate
  (calls) or yield (puts) lets early exercise pay beyond these: no lower end, no pruning. Both ends
  are widened by :data:`SIGMA_SLACK` (relative). Only where the price pins sigma (condition number
  price / (sigma x vega) at most :data:`MAX_CONDITION`): deep in the money the solvers' answers
  differ by far more than rounding, and there is no bracket.
* **Greeks over the bracket**: with ``s = sigma sqrt(T)`` and ``A = ln(S/K) + (r - q) T``,
  ``d1 = A/s + s/2`` and ``d2 = A/s - s/2`` have closed-form ranges over ``[s_lo, s_hi]`` (each is
  monotone or has one interior extremum at ``sqrt(2|A|)``); delta, gamma and theta are monotone in
  ``N(d1)``, ``N(d2)``, ``phi(d1)`` and ``s`` term by term, so each term takes its worst end. A
  contract inside the delta band has ``|delta| <= delta_max`` too, which caps the delta term.

Units: prices and ``dS`` in dollars per share, ``T`` in years, theta per year before the trader
convention (per calendar day, /365) and the selection's trading-day charge (x 365 / 252 sessions,
taken as one factor ``trading_days / SESSIONS_PER_YEAR``: the same to rounding, far inside
:data:`BOUND_SLACK`). A NaN bound (no bracket, bad inputs) never prunes.

The arithmetic is compiled (``aiots.core.quote_bounds``: one scalar pass in C per row, libm, no
GIL; its helpers for the d1/d2 ranges and the gain terms are the ones the modelled-chain refusal
settles contracts with); this module owns the margins (:data:`MARGINS`) and names the steps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiots.core import quote_bounds

F64 = npt.NDArray[np.float64]

SIGMA_SLACK = 1e-6  # relative widening of the IV bracket (solver tolerances are ~1e-12 relative)
PRICE_SLACK = 1e-9  # relative slack on the price for the lower IV end (pricer rounding)
D_SLACK = 1e-9  # absolute widening of the d1/d2 ranges (rounding in the closed forms)
BOUND_SLACK = 1e-9  # relative margin on the bound's terms before it may prune
MAX_CONDITION = 1e3  # price / (sigma x vega) at most: sigma is pinned by the price to ~1e-13 relative
ABS_SLACK = 1e-12  # absolute margin (dollars per share)
DELTA_RANGE_SLACK = 1e-9  # |delta| margin to take on the delta range before concluding from it (erfc ~1e-16)

#: the margins above, as the compiled kernels take them
MARGINS = quote_bounds.GainMargins(
    sigma_slack=SIGMA_SLACK,
    price_slack=PRICE_SLACK,
    d_slack=D_SLACK,
    bound_slack=BOUND_SLACK,
    max_condition=MAX_CONDITION,
    abs_slack=ABS_SLACK,
)


def iv_bracket(
    mid: F64, iv_eu: F64, S: float, K: F64, T: F64, r: float, q: float, is_call: bool, american: bool
) -> tuple[F64, F64]:
    """(sigma_lo, sigma_hi) holding the implied vol of ``mid`` for the contract's style (see the
    module docstring); ``iv_eu`` is the European IV of ``mid``. NaN where there is no bracket."""
    return quote_bounds.iv_bracket(mid, iv_eu, S, K, T, r, q, is_call, american, MARGINS)


def gain_upper_bound(
    S: float,
    K: F64,
    T: F64,
    r: float,
    q: float,
    is_call: bool,
    sigma_lo: F64,
    sigma_hi: F64,
    dS: float,
    trading_days: float,
    delta_max: float,
) -> F64:
    """An upper bound of ``delta*dS + gamma*dS^2/2 + theta_trading_day*trading_days`` over every
    sigma in ``[sigma_lo, sigma_hi]`` (BSM Greeks, theta charged per trading day as selection does),
    for contracts with ``|delta| <= delta_max``; includes a rounding margin; NaN where undefined."""
    return gain_and_delta_bounds(S, K, T, r, q, is_call, sigma_lo, sigma_hi, dS, trading_days, delta_max)[0]


def gain_and_delta_bounds(
    S: float,
    K: F64,
    T: F64,
    r: float,
    q: float,
    is_call: bool,
    sigma_lo: F64,
    sigma_hi: F64,
    dS: float,
    trading_days: float,
    delta_max: float,
) -> tuple[F64, F64, F64]:
    """(:func:`gain_upper_bound`, the least and the greatest signed BSM delta over every sigma in
    ``[sigma_lo, sigma_hi]``) from one pass; the delta range is widened by the d1 margin
    (:data:`D_SLACK`); NaN where undefined (then nothing may be concluded from it)."""
    return quote_bounds.gain_bounds(is_call, S, K, T, r, q, sigma_lo, sigma_hi, dS, trading_days, delta_max, MARGINS)


def bracket_gain_and_delta_bounds(
    mid: F64,
    iv_eu: F64,
    S: float,
    K: F64,
    T: F64,
    r: float,
    q: float,
    is_call: bool,
    dS: float,
    trading_days: float,
    delta_max: float,
) -> tuple[F64, F64, F64]:
    """:func:`iv_bracket` (American) then :func:`gain_and_delta_bounds` over it, the same numbers,
    in one compiled call (selection's bound before the American IV solve). The arrays are rows of
    one length; the European IVs of the reduced prices (the bracket's lower ends) are the core's."""
    return quote_bounds.bracket_gain_bounds(mid, iv_eu, S, K, T, r, q, is_call, dS, trading_days, delta_max, MARGINS)
