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
convention (per calendar day, /365) and the selection's trading-day charge (x 365 / 252 sessions).
A NaN bound (no bracket, bad inputs) never prunes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from aiots.core import options as opt
from aiots.core.conventions import SESSIONS_PER_YEAR

F64 = npt.NDArray[np.float64]

SIGMA_SLACK = 1e-6  # relative widening of the IV bracket (solver tolerances are ~1e-12 relative)
PRICE_SLACK = 1e-9  # relative slack on the price for the lower IV end (pricer rounding)
D_SLACK = 1e-9  # absolute widening of the d1/d2 ranges (rounding in the closed forms)
BOUND_SLACK = 1e-9  # relative margin on the bound's terms before it may prune
MAX_CONDITION = 1e3  # price / (sigma x vega) at most: sigma is pinned by the price to ~1e-13 relative
ABS_SLACK = 1e-12  # absolute margin (dollars per share)
DELTA_RANGE_SLACK = 1e-9  # |delta| margin to take on the delta range before concluding from it (erfc ~1e-16)
DAYS_PER_YEAR = 365.0  # the trader-units theta convention (per calendar day)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _ncdf(x: F64) -> F64:
    return np.asarray(0.5 * special.erfc(-x / math.sqrt(2.0)), dtype=np.float64)


def _npdf(x: F64) -> F64:
    return np.asarray(INV_SQRT_2PI * np.exp(-0.5 * x * x), dtype=np.float64)


def iv_bracket(
    mid: F64, iv_eu: F64, S: float, K: F64, T: F64, r: float, q: float, is_call: bool, american: bool
) -> tuple[F64, F64]:
    """(sigma_lo, sigma_hi) holding the implied vol of ``mid`` for the contract's style (see the
    module docstring); ``iv_eu`` is the European IV of ``mid``. NaN where there is no bracket."""
    hi = iv_eu * (1.0 + SIGMA_SLACK)
    if american and (r < 0 or q < 0):
        # a negative rate (call) or yield (put) makes early exercise pay without a bound used here
        return np.full_like(iv_eu, np.nan), hi
    # Where the price hardly depends on sigma (deep in the money: time value a sliver of the price)
    # the solvers' answers are only as good as the price allows: no bracket there.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rt = np.sqrt(T)
        d1 = (math.log(S) - np.log(K) + (r - q) * T) / (iv_eu * rt) + 0.5 * iv_eu * rt
        sigma_vega = iv_eu * S * np.exp(-q * T) * _npdf(d1) * rt
        conditioned = mid <= MAX_CONDITION * sigma_vega
    hi = np.where(conditioned, hi, np.nan)
    carry = q if is_call else r  # what early exercise earns: the dividend (call) or the strike's interest (put)
    if not american or carry == 0:
        # no early-exercise premium: the American price is the European one (to rounding), so is its IV
        # (to ulp x the condition number price / (sigma x vega), far inside SIGMA_SLACK)
        return np.where(conditioned, iv_eu * (1.0 - SIGMA_SLACK), np.nan), hi
    eep = (S if is_call else K) * (1.0 - np.exp(-carry * T))
    reduced = mid - eep - PRICE_SLACK * mid
    with np.errstate(invalid="ignore"):
        lo = np.asarray(opt.implied_vol(np.where(reduced > 0, reduced, np.nan), S, K, T, r, q, is_call), float)
    return np.where(conditioned, lo * (1.0 - SIGMA_SLACK), np.nan), hi


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
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rt = np.sqrt(T)
        a, b = sigma_lo * rt, sigma_hi * rt
        A = math.log(S) - np.log(K) + (r - q) * T
        d1a, d1b, d2a, d2b = A / a + 0.5 * a, A / b + 0.5 * b, A / a - 0.5 * a, A / b - 0.5 * b
        root = np.sqrt(2.0 * np.abs(A))
        inside = (a < root) & (root < b)
        d1min = np.where((A > 0) & inside, root, np.minimum(d1a, d1b)) - D_SLACK
        d1max = np.maximum(d1a, d1b) + D_SLACK
        d2min = np.minimum(d2a, d2b) - D_SLACK
        d2max = np.where((A < 0) & inside, -root, np.maximum(d2a, d2b)) + D_SLACK
        eq, er = np.exp(-q * T), np.exp(-r * T)
        n1min, n1max = _ncdf(d1min), _ncdf(d1max)
        if is_call:
            dlo, dhi = eq * n1min, eq * n1max
        else:
            dlo, dhi = eq * (n1min - 1.0), eq * (n1max - 1.0)
        t_delta = np.minimum(dhi * dS if dS >= 0 else dlo * dS, delta_max * abs(dS))
        spans_zero = (d1min <= 0) & (d1max >= 0)
        near0 = np.minimum(np.abs(d1min), np.abs(d1max))
        phi_max = np.where(spans_zero, INV_SQRT_2PI, _npdf(near0))
        phi_min = _npdf(np.maximum(np.abs(d1min), np.abs(d1max)))
        t_gamma = 0.5 * (eq * phi_max / (S * a)) * dS * dS
        theta = -eq * S * phi_min * a / (2.0 * T)  # the decay term's largest (least negative) value
        if is_call:
            theta = theta - r * K * er * _ncdf(d2min if r >= 0 else d2max)
            theta = theta + q * S * eq * _ncdf(d1max if q >= 0 else d1min)
        else:
            theta = theta + r * K * er * _ncdf(-(d2min if r >= 0 else d2max))
            theta = theta - q * S * eq * _ncdf(-(d1max if q >= 0 else d1min))
        t_theta = theta / DAYS_PER_YEAR * DAYS_PER_YEAR / SESSIONS_PER_YEAR * trading_days
        margin = BOUND_SLACK * (np.abs(t_delta) + np.abs(t_gamma) + np.abs(t_theta)) + ABS_SLACK
        out = t_delta + t_gamma + t_theta + margin
    ok = (T > 0) & (a > 0) & (b >= a) & np.isfinite(out)
    bounded = (T > 0) & (a > 0) & (b >= a)
    return np.where(ok, out, np.nan), np.where(bounded, dlo, np.nan), np.where(bounded, dhi, np.nan)


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
    """:func:`iv_bracket` (American) then :func:`gain_and_delta_bounds` over it, the same numbers bit
    for bit, in about half the NumPy calls: what both compute (``sqrt(T)``, ``log K``, the discount
    factors) is computed once, and the ends of the d1/d2 ranges and the normal CDFs of a row go
    through each ufunc as one stacked array (element-wise, the same operations on each element)."""
    n = len(K)
    if r < 0 or q < 0:  # no lower end of the bracket: no bound (iv_bracket's first exit)
        nan = np.full(n, np.nan)
        return nan, nan, nan
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rt = np.sqrt(T)
        A = math.log(S) - np.log(K) + (r - q) * T
        sig_rt = iv_eu * rt
        d1 = A / sig_rt + 0.5 * sig_rt
        eq = np.exp(-q * T)
        sigma_vega = iv_eu * S * eq * _npdf(d1) * rt
        conditioned = mid <= MAX_CONDITION * sigma_vega
        hi = np.where(conditioned, iv_eu * (1.0 + SIGMA_SLACK), np.nan)
        carry = q if is_call else r
        er = np.exp(-r * T)
        if carry == 0:
            lo = np.where(conditioned, iv_eu * (1.0 - SIGMA_SLACK), np.nan)
        else:
            eep = (S if is_call else K) * (1.0 - (eq if is_call else er))  # exp(-carry T)
            reduced = mid - eep - PRICE_SLACK * mid
            solved = np.asarray(opt.implied_vol(np.where(reduced > 0, reduced, np.nan), S, K, T, r, q, is_call), float)
            lo = np.where(conditioned, solved * (1.0 - SIGMA_SLACK), np.nan)
        # the bound (gain_and_delta_bounds' steps; [a | b] stacked where both ends take the same steps)
        ab = np.concatenate((lo * rt, hi * rt))
        a, b = ab[:n], ab[n:]
        AA = np.concatenate((A, A))
        x, half = AA / ab, 0.5 * ab
        d1ab, d2ab = x + half, x - half
        d1a, d1b, d2a, d2b = d1ab[:n], d1ab[n:], d2ab[:n], d2ab[n:]
        root = np.sqrt(2.0 * np.abs(A))
        inside = (a < root) & (root < b)
        d1min = np.where((A > 0) & inside, root, np.minimum(d1a, d1b)) - D_SLACK
        d1max = np.maximum(d1a, d1b) + D_SLACK
        d2min = np.minimum(d2a, d2b) - D_SLACK
        d2max = np.where((A < 0) & inside, -root, np.maximum(d2a, d2b)) + D_SLACK
        if is_call:
            u, w = (d2min if r >= 0 else d2max), (d1max if q >= 0 else d1min)
        else:
            u, w = -(d2min if r >= 0 else d2max), -(d1max if q >= 0 else d1min)
        ncdf = _ncdf(np.concatenate((d1min, d1max, u, w)))
        n1min, n1max, nu, nw = ncdf[:n], ncdf[n : 2 * n], ncdf[2 * n : 3 * n], ncdf[3 * n :]
        if is_call:
            dlo, dhi = eq * n1min, eq * n1max
        else:
            dlo, dhi = eq * (n1min - 1.0), eq * (n1max - 1.0)
        t_delta = np.minimum(dhi * dS if dS >= 0 else dlo * dS, delta_max * abs(dS))
        spans_zero = (d1min <= 0) & (d1max >= 0)
        abs1 = np.abs(np.concatenate((d1min, d1max)))
        abs_min, abs_max = abs1[:n], abs1[n:]
        phis = _npdf(np.concatenate((np.minimum(abs_min, abs_max), np.maximum(abs_min, abs_max))))
        phi_max = np.where(spans_zero, INV_SQRT_2PI, phis[:n])
        phi_min = phis[n:]
        t_gamma = 0.5 * (eq * phi_max / (S * a)) * dS * dS
        theta = -eq * S * phi_min * a / (2.0 * T)  # the decay term's largest (least negative) value
        if is_call:
            theta = theta - r * K * er * nu
            theta = theta + q * S * eq * nw
        else:
            theta = theta + r * K * er * nu
            theta = theta - q * S * eq * nw
        t_theta = theta / DAYS_PER_YEAR * DAYS_PER_YEAR / SESSIONS_PER_YEAR * trading_days
        margin = BOUND_SLACK * (np.abs(t_delta) + np.abs(t_gamma) + np.abs(t_theta)) + ABS_SLACK
        out = t_delta + t_gamma + t_theta + margin
    bounded = (T > 0) & (a > 0) & (b >= a)
    return (
        np.where(bounded & np.isfinite(out), out, np.nan),
        np.where(bounded, dlo, np.nan),
        np.where(bounded, dhi, np.nan),
    )
