"""Option-chain helpers over the compiled core: implied forward, delta strikes, ATM, expiry time.

Conventions as in :mod:`aiots.core.options`: T in years ACT/365, r and q continuously compounded,
premiums per share. The expiry instant, OCC symbols and the New York zone come from
:mod:`aiots.core.conventions` (re-exported here for existing callers): an option expires at its
expiry session's close (16:00 ET, or the early close).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from aiots.core import options as _opt
from aiots.core.conventions import NS_PER_YEAR, NY, OccSymbol, expiry_ns, format_occ, parse_occ

__all__ = [
    "NS_PER_YEAR", "NY", "ForwardEstimate", "OccSymbol", "atm_strike", "expiry_ns", "format_occ", "implied_forward",
    "parse_occ", "strike_from_delta", "time_to_expiry",
]  # fmt: skip

FloatArray = npt.NDArray[np.float64]


class ForwardEstimate(NamedTuple):
    """Implied forward F and, when the spot was given, the implied continuous yield q."""

    forward: float
    q: float
    n_used: int


def implied_forward(
    strikes: npt.ArrayLike,
    call_mids: npt.ArrayLike,
    put_mids: npt.ArrayLike,
    T: float,
    r: float,
    spot: float | None = None,
    n_near: int = 5,
) -> ForwardEstimate:
    """Forward from put-call parity, F = K + e^{rT} (C - P), as the median over the ``n_near``
    strikes with the smallest |C - P| (nearest the money, where quotes are tightest).

    Strikes with a missing/non-positive/NaN mid are ignored. ``q = r - ln(F / spot) / T`` when
    ``spot`` is given, else NaN. Raises ValueError when no usable strike remains or T <= 0.
    """
    K = np.asarray(strikes, dtype=np.float64).ravel()
    C = np.asarray(call_mids, dtype=np.float64).ravel()
    P = np.asarray(put_mids, dtype=np.float64).ravel()
    if not (K.shape == C.shape == P.shape):
        raise ValueError(f"strikes, call_mids, put_mids must have equal lengths, got {K.shape}, {C.shape}, {P.shape}")
    if not (np.isfinite(T) and T > 0.0):
        raise ValueError(f"T must be a positive number of years, got {T}")
    ok = np.isfinite(K) & np.isfinite(C) & np.isfinite(P) & (K > 0) & (C > 0) & (P > 0)
    if not ok.any():
        raise ValueError("implied_forward: no strike with both a call and a put mid")
    K, C, P = K[ok], C[ok], P[ok]
    order = np.argsort(np.abs(C - P), kind="stable")[: max(1, n_near)]
    fwd = float(np.median(K[order] + np.exp(r * T) * (C[order] - P[order])))
    q = float(r - np.log(fwd / spot) / T) if spot is not None and spot > 0 and fwd > 0 else float("nan")
    return ForwardEstimate(fwd, q, int(order.size))


def strike_from_delta(
    delta: npt.ArrayLike,
    S: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    sigma: npt.ArrayLike,
    q: npt.ArrayLike = 0.0,
    is_call: npt.ArrayLike = True,
    delta_type: str = "spot",
) -> FloatArray | float:
    """Strike whose BSM delta equals ``delta`` (e.g. 0.25 call, -0.25 put) at vol ``sigma``.

    ``delta_type="spot"``: delta = theta e^{-qT} N(theta d1); ``"forward"``: without e^{-qT}.
    NaN where the delta is unreachable (|delta| >= e^{-qT} for spot delta, wrong sign).
    """
    if delta_type not in ("spot", "forward"):
        raise ValueError(f"delta_type must be 'spot' or 'forward', got {delta_type!r}")
    d, s, t, rr, v, qq = (np.asarray(a, dtype=np.float64) for a in (delta, S, T, r, sigma, q))
    call = np.asarray(is_call, dtype=bool)
    th = np.where(call, 1.0, -1.0)
    scale = np.exp(qq * t) if delta_type == "spot" else np.ones_like(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = th * d * scale  # N(theta d1)
        p = np.where((p > 0) & (p < 1), p, np.nan)
        d1 = th * np.asarray(_opt.norm_ppf(p))
        k = s * np.exp(-d1 * v * np.sqrt(t) + (rr - qq + 0.5 * v * v) * t)
    out = np.asarray(k, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


def atm_strike(
    strikes: npt.ArrayLike, forward: float, method: str = "forward", sigma: float | None = None, T: float | None = None
) -> float:
    """Listed strike nearest the ATM level: the forward (``"forward"``) or the delta-neutral
    straddle strike F e^{sigma^2 T / 2} (``"delta_neutral"``, needs sigma and T). Ties go to the
    lower strike."""
    K = np.sort(np.asarray(strikes, dtype=np.float64).ravel())
    K = K[np.isfinite(K)]
    if K.size == 0:
        raise ValueError("atm_strike: no finite strikes")
    if method == "forward":
        level = forward
    elif method == "delta_neutral":
        if sigma is None or T is None:
            raise ValueError("atm_strike: method='delta_neutral' needs sigma and T")
        level = forward * float(np.exp(0.5 * sigma * sigma * T))
    else:
        raise ValueError(f"atm_strike: method must be 'forward' or 'delta_neutral', got {method!r}")
    return float(K[int(np.argmin(np.abs(K - level)))])


def time_to_expiry(now_ns: npt.ArrayLike, expiry_date: dt.date | str) -> FloatArray | float:
    """Years (ACT/365, exact nanoseconds) from ``now_ns`` (int64 ns UTC, scalar or array) to the
    expiry instant of ``expiry_date`` (its session close). Negative once expired."""
    now = np.asarray(now_ns, dtype=np.int64)
    out = (expiry_ns(expiry_date) - now).astype(np.float64) / NS_PER_YEAR
    return float(out) if out.ndim == 0 else out
