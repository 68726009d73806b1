"""Arbitrage-free SVI volatility surface: slices fitted under no-arbitrage constraints (scipy SLSQP).

Conventions: ``k = ln(K/F)`` is log forward moneyness, ``t`` years (ACT/365), ``w = iv^2 * t`` is
total implied variance. Slices are fitted longest first, each constrained to lie below the next
longer accepted slice (long slices span the widest k range, and the bound also caps a short
slice's extrapolated wings). Per slice:

1. An eSSVI slice (Gatheral & Jacquier 2014; Hendriks & Martini 2019)

       w(k) = theta/2 * (1 + rho*phi*k + sqrt((phi*k + rho)^2 + 1 - rho^2)),  psi = theta * phi

   (raw SVI with a = theta(1 - rho^2)/2, b = psi/2, m = -rho/phi, sigma = sqrt(1 - rho^2)/phi),
   fitted from fixed starts under the Gatheral-Jacquier no-butterfly conditions
   psi (1 + |rho|) < 4 and psi^2 (1 + |rho|) <= 4 theta (so g(k) >= 0 for every k), and calendar
   order: w <= w_longer on a grid and wing slopes b (1 +- rho) no steeper than the longer slice's.
2. From that start, raw SVI (5 parameters) under g(k) >= G_MARGIN on a grid, minimum variance
   >= 0, Lee's wing bound b (1 + |rho|) <= 2 and the same calendar order; dense-grid points where
   a constraint fails are added and the problem re-solved. It is kept only if it passes the dense
   checks; otherwise the eSSVI slice is.

Residuals are IV errors under a soft-L1 loss. Every slice is then checked numerically (g on a
dense grid; w against the longer slice) and its 25-delta risk reversal, at the quoted 25-delta
strikes, is compared in sign with the quoted one. A slice that fails gets a status other than
"OK" with a reason, and stays out of the grid and of the calendar chain.

Size: one fitting method (eSSVI seed, constrained raw-SVI refinement, the arbitrage checks, the
grid) whose steps share private helpers; split, it would be one method spread over files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

F64 = npt.NDArray[np.float64]

DENSITY_POINTS = 801
DENSITY_MARGIN = 2.0
DENSITY_TOL = -1e-9
CALENDAR_TOL = 1e-12
CALENDAR_POINTS = 121
#: points of the dense grid a fitted slice is checked on (butterfly and calendar order between slices)
CHECK_POINTS = 4001
MIN_POINTS = 5
#: strict margin on the Gatheral-Jacquier bound psi (1 + |rho|) < 4
GJ_BOUND = 4.0 - 1e-6
RHO_MAX = 0.999
THETA_MAX = 25.0
#: IV residuals beyond this (0.01 = 1 vol point) weigh linearly, not quadratically
ROBUST_SCALE = 0.01
SLSQP_MAXITER = 200
#: re-solves of the raw-SVI refinement with the dense points where a grid constraint failed added
REFINE_ROUNDS = 4
SLSQP_FTOL = 1e-12
#: constraint violation above which a solution counts as infeasible
FEASIBILITY_TOL = 1e-9
#: when every SLSQP end is infeasible, the constraints are tightened by this much and solved again
STALL_BUFFER = 1e-6
#: fixed starts: rho, and psi as a fraction of the largest butterfly-free psi
START_RHO = (-0.6, 0.0, 0.6)
START_PSI_FRACTION = (0.5,)
#: quoted risk reversals smaller than this (vol, 0.0025 = 0.25 vol points) have no reliable sign
SKEW_SIGN_TOL = 0.0025

OK = "OK"
SKEW_MISMATCH = "SKEW_MISMATCH"
ARBITRAGE = "ARBITRAGE"
TOO_FEW_QUOTES = "TOO_FEW_QUOTES"
FIT_FAILED = "FIT_FAILED"
POOR_FIT = "POOR_FIT"
#: a slice whose median absolute IV error exceeds this (vol points) is POOR_FIT, not OK
POOR_FIT_VOL_POINTS = 2.0
PARAMETRIZATION = "svi"
#: Roger Lee's moment bound on the wings' total-variance slope: b (1 + |rho|) <= 2
LEE_SLOPE = 2.0
#: the raw-SVI refinement imposes g(k) >= 0 and calendar order on this grid around the quotes
CONSTRAINT_POINTS = 25
CONSTRAINT_WING_POINTS = 8
#: g(k) >= G_MARGIN on the constraint grid, so that g stays >= 0 between its points
G_MARGIN = 1e-3
#: w - w_prev >= CALENDAR_MARGIN on the constraint grid, so that the order holds between its points
CALENDAR_MARGIN = 1e-7


@dataclass(frozen=True)
class SviParams:
    """Raw-SVI parameters of one slice (total variance)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def total_variance(self, k: F64) -> F64:
        """w(k) for log-moneyness ``k``."""
        x = np.asarray(k, dtype=np.float64) - self.m
        return np.asarray(self.a + self.b * (self.rho * x + np.sqrt(x * x + self.sigma**2)), dtype=np.float64)

    def density_factor(self, k: F64) -> F64:
        """Gatheral's g(k) (negative means butterfly arbitrage)."""
        x = np.asarray(k, dtype=np.float64) - self.m
        root = np.sqrt(x * x + self.sigma**2)
        w = self.a + self.b * (self.rho * x + root)
        w1 = self.b * (self.rho + x / root)
        w2 = self.b * self.sigma**2 / root**3
        kk = np.asarray(k, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (1.0 - kk * w1 / (2.0 * w)) ** 2 - (w1 * w1 / 4.0) * (1.0 / w + 0.25) + w2 / 2.0
        return np.asarray(np.where(w > 0, g, -np.inf), dtype=np.float64)


@dataclass(frozen=True)
class SsviParams:
    """One eSSVI slice: ATM total variance ``theta``, correlation ``rho``, ``psi = theta * phi``."""

    theta: float
    rho: float
    psi: float

    def to_raw(self) -> SviParams:
        """The same slice as raw SVI."""
        phi = self.psi / self.theta
        r = self.rho
        return SviParams(
            a=self.theta * (1.0 - r * r) / 2.0,
            b=self.psi / 2.0,
            rho=r,
            m=-r / phi,
            sigma=math.sqrt(max(1.0 - r * r, 0.0)) / phi,
        )

    def total_variance(self, k: F64) -> F64:
        """w(k) for log-moneyness ``k``."""
        kk = np.asarray(k, dtype=np.float64)
        phi = self.psi / self.theta
        x = phi * kk + self.rho
        return np.asarray(
            self.theta / 2.0 * (1.0 + self.rho * phi * kk + np.sqrt(x * x + 1.0 - self.rho**2)), dtype=np.float64
        )


@dataclass(frozen=True)
class SliceQuotes:
    """What one expiry offers the fit: OTM two-sided IVs at ``k``, and the quoted 25-delta strikes
    (as log-moneyness) and risk reversal (NaN when not reached)."""

    label: str
    t: float
    k: F64
    iv: F64
    k_call25: float = math.nan
    k_put25: float = math.nan
    quoted_rr25: float = math.nan
    #: quotes of this expiry left out before the fit, by reason
    excluded: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SliceFit:
    """A fitted (or rejected) slice: parameters, quality, arbitrage figures and status."""

    label: str
    t: float
    params: SviParams
    rmse_vol_points: float
    points: int
    butterfly_arbitrage_free: bool
    min_density: float
    status: str = OK
    reason: str = ""
    ssvi: SsviParams | None = None
    quoted_rr25: float = math.nan
    fitted_rr25: float = math.nan
    calendar_arbitrage_free: bool = True
    #: "svi" (raw SVI refined under the constraints) or "essvi" (the constrained eSSVI start, kept
    #: when the refinement does not pass the checks)
    parametrization: str = ""


@dataclass(frozen=True)
class SurfaceFit:
    """Fitted slices (nearest first; status per slice) and the calendar check over the OK ones."""

    slices: list[SliceFit]
    calendar_arbitrage_free: bool

    @property
    def ok(self) -> list[SliceFit]:
        """The slices with status "OK" (the ones the grid uses)."""
        return [s for s in self.slices if s.status == OK]


_NAN_RAW = SviParams(math.nan, math.nan, math.nan, math.nan, math.nan)


def _loss(r: F64) -> float:
    """Soft-L1 loss of IV residuals (quadratic within ROBUST_SCALE, linear beyond): a few bad
    quotes in the wings cannot drag the slice."""
    z = r / ROBUST_SCALE
    return float(2.0 * ROBUST_SCALE**2 * np.sum(np.sqrt(1.0 + z * z) - 1.0))


def wide_grid(lo: float, hi: float, points: int) -> F64:
    """Where calendar order is checked: the quotes' k range widened to at least [-1, 1] and by
    DENSITY_MARGIN either side."""
    return np.linspace(min(lo, -1.0) - DENSITY_MARGIN, max(hi, 1.0) + DENSITY_MARGIN, points)


def constraint_grid(lo: float, hi: float) -> F64:
    """Where the fit imposes its grid constraints: CONSTRAINT_POINTS across the quotes and
    CONSTRAINT_WING_POINTS over each DENSITY_MARGIN wing (few points keep SLSQP's QP small)."""
    left = np.linspace(lo - DENSITY_MARGIN, lo, CONSTRAINT_WING_POINTS + 1)[:-1]
    right = np.linspace(hi, hi + DENSITY_MARGIN, CONSTRAINT_WING_POINTS + 1)[1:]
    return np.concatenate([left, np.linspace(lo, hi, CONSTRAINT_POINTS), right])


def _calendar_rows(w: F64, b: float, rho: float, later: SviParams | None, w_later: F64 | None) -> list[F64]:
    """Calendar constraints (>= 0): w below the next later slice on the grid, wing slopes
    (b (1 +- rho)) no steeper than its."""
    if later is None or w_later is None:
        return []
    return [
        w_later - w - CALENDAR_MARGIN,
        np.array([later.b * (1.0 + later.rho) - b * (1.0 + rho), later.b * (1.0 - later.rho) - b * (1.0 - rho)]),
    ]


def _ssvi_cons(x: F64, grid: F64, prev: SviParams | None, w_prev: F64 | None) -> F64:
    """All eSSVI constraints (>= 0) on x = (theta, rho, psi) as one vector: Gatheral-Jacquier
    no-butterfly (both signs of rho) and calendar order against ``prev``."""
    th, r, ps = float(x[0]), float(x[1]), float(x[2])
    rows = [
        np.array(
            [
                GJ_BOUND - ps * (1.0 + r),
                GJ_BOUND - ps * (1.0 - r),
                4.0 * th - ps * ps * (1.0 + r),
                4.0 * th - ps * ps * (1.0 - r),
            ]
        )
    ]
    if prev is not None:
        w = SsviParams(max(th, 1e-12), r, max(ps, 1e-12)).total_variance(grid)
        rows += _calendar_rows(w, ps / 2.0, r, prev, w_prev)
    return np.concatenate(rows)


def _violation(x: F64, grid: F64, prev: SviParams | None, w_prev: F64 | None) -> float:
    worst = -float(np.min(_ssvi_cons(x, grid, prev, w_prev)))
    lo = min(x[0] - 1e-10, RHO_MAX - abs(x[1]), x[2] - 1e-10)
    return float(max(worst, -lo, 0.0))


def fit_ssvi_slice(
    k: F64, iv: F64, t: float, prev: SviParams | None = None, span: tuple[float, float] | None = None
) -> tuple[SsviParams | None, str]:
    """Least squares in IV of one eSSVI slice under the module's constraints.

    Returns (params, "") or (None, reason). ``prev`` is the next longer accepted slice (w must stay below it).
    """
    c_lo, c_hi = span or (float(np.min(k)), float(np.max(k)))
    grid = constraint_grid(min(c_lo, -1.0), max(c_hi, 1.0))
    w_prev = prev.total_variance(grid) if prev is not None else None
    ka = np.asarray(k, dtype=np.float64)
    va = np.asarray(iv, dtype=np.float64)
    w = va * va * t
    order = np.argsort(ka)
    theta0 = float(np.interp(0.0, ka[order], w[order]))
    theta_hi = float(prev.total_variance(np.zeros(1))[0]) if prev is not None else THETA_MAX
    theta0 = max(min(theta0, theta_hi * (1.0 - 1e-3)), 1e-8)
    sqrt_t = math.sqrt(t)

    def objective(x: F64) -> float:
        p = SsviParams(float(x[0]), float(x[1]), float(x[2]))
        wm = np.maximum(p.total_variance(ka), 0.0)
        return _loss(np.sqrt(wm) / sqrt_t - va)

    bounds = [(1e-10, THETA_MAX), (-RHO_MAX, RHO_MAX), (1e-10, 4.0)]
    cons = [{"type": "ineq", "fun": lambda x: _ssvi_cons(x, grid, prev, w_prev)}]
    best: tuple[float, F64] | None = None
    for rho0 in START_RHO:
        psi_max = min(GJ_BOUND / (1.0 + abs(rho0)), math.sqrt(4.0 * theta0 / (1.0 + abs(rho0))))
        for frac in START_PSI_FRACTION:
            psi0 = frac * psi_max
            if prev is not None:
                psi0 = min(psi0, 2.0 * prev.b * (1.0 - abs(prev.rho)) * (1.0 - 1e-3))
            res = minimize(
                objective,
                np.array([theta0, rho0, psi0]),
                method="SLSQP",
                bounds=bounds,
                constraints=cons,
                options={"maxiter": SLSQP_MAXITER, "ftol": SLSQP_FTOL},
            )
            x = np.asarray(res.x, dtype=np.float64)
            if not np.all(np.isfinite(x)) or _violation(x, grid, prev, w_prev) > FEASIBILITY_TOL:
                continue
            f = objective(x)
            if best is None or f < best[0]:
                best = (f, x)
    if best is None:
        return None, "no start reached a point that satisfies the no-arbitrage constraints"
    x = best[1]
    return SsviParams(float(x[0]), float(x[1]), float(x[2])), ""


def _svi_cons(x: F64, g_grid: F64, c_grid: F64, prev: SviParams | None, w_prev: F64 | None) -> F64:
    """All raw-SVI constraints (>= 0) on x = (a, b, rho, m, sigma) as one vector: g(k) >= G_MARGIN
    on ``g_grid``, minimum variance >= 0, Lee's wing bound, and calendar order against ``prev``."""
    p = SviParams(float(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4]))
    rows = [
        np.nan_to_num(p.density_factor(g_grid), nan=-1.0, neginf=-1.0) - G_MARGIN,
        np.array(
            [
                p.a + p.b * p.sigma * math.sqrt(max(1.0 - p.rho**2, 0.0)),
                LEE_SLOPE - p.b * (1.0 + p.rho),
                LEE_SLOPE - p.b * (1.0 - p.rho),
            ]
        ),
    ]
    if prev is not None:
        rows += _calendar_rows(p.total_variance(c_grid), p.b, p.rho, prev, w_prev)
    return np.concatenate(rows)


def refine_raw_svi(
    k: F64, iv: F64, t: float, start: SsviParams, prev: SviParams | None = None, span: tuple[float, float] | None = None
) -> SviParams | None:
    """Raw SVI (5 parameters) from a feasible eSSVI start, under g(k) >= 0 and w >= 0 on a grid
    around the quotes, Lee's wing bound b (1 + |rho|) <= 2 and, against ``prev`` (the next longer
    slice), w <= w_prev on the grid with wing slopes no steeper. Grid points are added where the
    dense checks fail (REFINE_ROUNDS). None when SLSQP ends infeasible or no better."""
    ka = np.asarray(k, dtype=np.float64)
    va = np.asarray(iv, dtype=np.float64)
    sqrt_t = math.sqrt(t)
    lo, hi = float(ka.min()), float(ka.max())

    def objective(x: F64) -> float:
        w = SviParams(float(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4])).total_variance(ka)
        return _loss(np.sqrt(np.maximum(w, 0.0)) / sqrt_t - va)

    r0 = start.to_raw()
    x0 = np.array([r0.a, r0.b, r0.rho, r0.m, r0.sigma])
    bounds = [(-THETA_MAX, THETA_MAX), (0.0, LEE_SLOPE), (-RHO_MAX, RHO_MAX), (lo - 2.0, hi + 2.0), (1e-4, 5.0)]
    x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
    g_grid = constraint_grid(lo, hi)
    c_lo, c_hi = span or (lo, hi)
    c_grid = constraint_grid(min(c_lo, -1.0), max(c_hi, 1.0))
    g_dense = np.linspace(lo - DENSITY_MARGIN, hi + DENSITY_MARGIN, DENSITY_POINTS)
    c_dense = wide_grid(c_lo, c_hi, DENSITY_POINTS)
    x = x0
    for _ in range(REFINE_ROUNDS):
        w_prev = prev.total_variance(c_grid) if prev is not None else None
        cons = [{"type": "ineq", "fun": lambda z, g=g_grid, c=c_grid, wp=w_prev: _svi_cons(z, g, c, prev, wp)}]
        fun = cons[0]["fun"]
        # Warm start from the previous round (infeasible on the points just added); when SLSQP does
        # not converge from there, again from the feasible eSSVI start, keeping the better feasible
        # end. When every end is infeasible, the same starts once more against the constraints
        # tightened by STALL_BUFFER. Whether SLSQP stalls turns on last bits: a real SPXW slice
        # (2018-01-02) hit the iteration limit 1.6e-9 outside the constraints from a warm start on
        # one CPU, and 7.7e-8 outside from the eSSVI start on another (feasible when tightened).
        best: F64 | None = None
        for buffer in (0.0, STALL_BUFFER):
            tight = cons if buffer == 0.0 else [{"type": "ineq", "fun": lambda z, f=fun, b=buffer: f(z) - b}]
            for start in [x] if x is x0 else [x, x0]:
                with np.errstate(all="ignore"):
                    res = minimize(
                        objective, start, method="SLSQP", bounds=bounds, constraints=tight,
                        options={"maxiter": SLSQP_MAXITER, "ftol": SLSQP_FTOL},
                    )  # fmt: skip
                xr = np.asarray(res.x, dtype=np.float64)
                if np.all(np.isfinite(xr)) and float(np.min(fun(xr))) >= -FEASIBILITY_TOL:  # type: ignore[operator]
                    if best is None or objective(xr) < objective(best):
                        best = xr
                    if res.success:
                        break
            if best is not None:
                break
        if best is None:
            return None
        x = best
        p = SviParams(float(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4]))
        # the constraints hold on the coarse grids; add the dense points where they fail and re-solve
        g_bad = g_dense[p.density_factor(g_dense) < 0]
        c_bad = c_dense[p.total_variance(c_dense) - prev.total_variance(c_dense) > 0] if prev is not None else g_bad[:0]
        if g_bad.size == 0 and c_bad.size == 0:
            break
        g_grid = np.union1d(g_grid, g_bad[:: max(1, g_bad.size // 8)])
        c_grid = np.union1d(c_grid, c_bad[:: max(1, c_bad.size // 8)])
    else:
        return None
    if objective(x) >= objective(x0) and float(np.min(_svi_cons(x0, g_dense, c_dense, prev, None))) >= 0:
        return None  # the (feasible) eSSVI start is at least as good
    return SviParams(float(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4]))


def _checks(p: SviParams, lo: float, hi: float, grid: F64, w_prev: F64 | None) -> tuple[bool, float, bool]:
    """(butterfly free, min g, calendar free: w <= ``w_prev`` of the later slice on ``grid``)."""
    free, mn = butterfly_check(p, lo, hi)
    cal = w_prev is None or bool(np.all(w_prev - p.total_variance(grid) >= -CALENDAR_TOL))
    return free, mn, cal


def _rejected(q: SliceQuotes, points: int, status: str, reason: str) -> SliceFit:
    return SliceFit(
        q.label, q.t, _NAN_RAW, math.nan, points, False, math.nan, status, reason, None, q.quoted_rr25, math.nan, False
    )


def _as_quotes(item: SliceQuotes | tuple[str, float, F64, F64]) -> SliceQuotes:
    if isinstance(item, SliceQuotes):
        return item
    label, t, k, iv = item
    return SliceQuotes(label, float(t), np.asarray(k, dtype=np.float64), np.asarray(iv, dtype=np.float64))


def fit_surface(
    quotes: Sequence[SliceQuotes | tuple[str, float, F64, F64]], calendar_grid: F64 | None = None
) -> SurfaceFit:
    """Fit every slice, longest first, each under the next longer OK slice (see the module docstring).

    ``quotes`` are :class:`SliceQuotes` or (label, t, k, iv) tuples. Every slice comes back, with
    status "OK" or why not. ``calendar_grid`` (log-moneyness) is where the calendar check runs;
    it defaults to the union range of quoted k on CALENDAR_POINTS points.
    """
    # longest first: long slices span the widest k range; each shorter slice must lie below the
    # next longer accepted one (which also caps its extrapolated wings)
    items = sorted((_as_quotes(q) for q in quotes), key=lambda q: -q.t)
    fits: list[SliceFit] = []
    prev: SliceFit | None = None
    prev_span = (0.0, 0.0)
    k_lo, k_hi = math.inf, -math.inf
    for q in items:
        ok = np.isfinite(q.k) & np.isfinite(q.iv) & (q.iv > 0)
        ka, va = q.k[ok], q.iv[ok]
        if not (q.t > 0 and math.isfinite(q.t)):
            fits.append(_rejected(q, int(ka.size), TOO_FEW_QUOTES, f"t must be positive years, got {q.t}"))
            continue
        if ka.size < MIN_POINTS:
            fits.append(
                _rejected(q, int(ka.size), TOO_FEW_QUOTES, f"{ka.size} usable quotes; at least {MIN_POINTS} needed")
            )
            continue
        lo, hi = float(ka.min()), float(ka.max())
        # calendar order is imposed and checked over this slice's and the longer slice's k range
        span = (min(lo, prev_span[0]), max(hi, prev_span[1])) if prev is not None else (lo, hi)
        ssvi, why = fit_ssvi_slice(ka, va, q.t, prev.params if prev is not None else None, span)
        if ssvi is None:
            fits.append(_rejected(q, int(ka.size), FIT_FAILED, why))
            continue
        grid = wide_grid(span[0], span[1], CHECK_POINTS)

        w_prev = prev.params.total_variance(grid) if prev is not None else None

        raw, model = ssvi.to_raw(), "essvi"
        refined = refine_raw_svi(ka, va, q.t, ssvi, prev.params if prev is not None else None, span)
        if refined is not None:
            rf, _, rc = _checks(refined, lo, hi, grid, w_prev)
            if rf and rc:
                raw, model = refined, "svi"
        free, mn, cal_free = _checks(raw, lo, hi, grid, w_prev)
        resid = slice_iv(raw, ka, q.t) - va
        rmse = float(np.sqrt(np.mean(resid * resid)) * 100.0)
        fitted_rr = math.nan
        if math.isfinite(q.k_call25) and math.isfinite(q.k_put25):
            iv_c, iv_p = slice_iv(raw, np.array([q.k_call25, q.k_put25]), q.t).tolist()
            fitted_rr = iv_c - iv_p
        status, reason = OK, ""
        mad = float(np.median(np.abs(resid))) * 100.0
        if not free or not cal_free:
            status = ARBITRAGE
            reason = f"min g(k) = {mn:.3g}" if not free else "total variance above the next longer slice's"
        elif (
            math.isfinite(q.quoted_rr25)
            and abs(q.quoted_rr25) >= SKEW_SIGN_TOL
            and math.isfinite(fitted_rr)
            and math.copysign(1.0, fitted_rr) != math.copysign(1.0, q.quoted_rr25)
        ):
            status = SKEW_MISMATCH
            reason = f"fitted 25-delta risk reversal {fitted_rr:+.4f} vs quoted {q.quoted_rr25:+.4f}"
        elif mad > POOR_FIT_VOL_POINTS:
            status = POOR_FIT
            reason = f"median |IV error| {mad:.2f} vol points (limit {POOR_FIT_VOL_POINTS})"
        fit = SliceFit(
            q.label, q.t, raw, rmse, int(ka.size), free, mn, status, reason, ssvi, q.quoted_rr25, fitted_rr, cal_free,
            model,
        )  # fmt: skip
        fits.append(fit)
        if status == OK:
            prev, prev_span = fit, (lo, hi)
            k_lo, k_hi = min(k_lo, lo), max(k_hi, hi)
    fits.sort(key=lambda f: f.t)
    ok_fits = [f for f in fits if f.status == OK]
    if calendar_grid is None:
        calendar_grid = np.linspace(k_lo, k_hi, CALENDAR_POINTS) if ok_fits else np.zeros(0)
    return SurfaceFit(slices=fits, calendar_arbitrage_free=calendar_free(ok_fits, calendar_grid))


def slice_iv(params: SviParams, k: F64, t: float) -> F64:
    """Implied vol of a slice at ``k`` (NaN where total variance is negative)."""
    w = params.total_variance(k)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.where(w >= 0, np.sqrt(np.maximum(w, 0.0) / t), np.nan), dtype=np.float64)


def butterfly_check(params: SviParams, k_lo: float, k_hi: float) -> tuple[bool, float]:
    """(free, min g) over a dense grid (CHECK_POINTS) widened by DENSITY_MARGIN either side of [k_lo, k_hi]."""
    grid = np.linspace(k_lo - DENSITY_MARGIN, k_hi + DENSITY_MARGIN, CHECK_POINTS)
    g = params.density_factor(grid)
    mn = float(np.min(g))
    return bool(mn >= DENSITY_TOL), mn


def calendar_free(fits: Sequence[SliceFit], k: F64) -> bool:
    """True when total variance is non-decreasing in t at every ``k`` (tolerance CALENDAR_TOL)."""
    if len(fits) < 2 or k.size == 0:
        return True
    ws = np.vstack([f.params.total_variance(k) for f in fits])
    return bool(np.all(np.diff(ws, axis=0) >= -CALENDAR_TOL))


def surface_grid(fits: Sequence[SliceFit], k: F64, t: F64) -> F64:
    """IV on the grid (len(t), len(k)) from the "OK" slices.

    Between fitted maturities total variance is interpolated linearly in t (which keeps calendar
    freedom); before the first slice w scales with t/t1 (flat IV); after the last the last slice's
    IV is held flat.
    """
    out = np.full((t.size, k.size), np.nan)
    fits = [f for f in fits if f.status == OK]
    if not fits:
        return out
    ts = np.array([f.t for f in fits])
    ws = np.vstack([f.params.total_variance(k) for f in fits])
    for i, tt in enumerate(t):
        if not tt > 0:
            continue
        if tt <= ts[0]:
            w = ws[0] * tt / ts[0]
        elif tt >= ts[-1]:
            w = ws[-1] * tt / ts[-1]
        else:
            j = int(np.searchsorted(ts, tt)) - 1
            lam = (tt - ts[j]) / (ts[j + 1] - ts[j])
            w = (1 - lam) * ws[j] + lam * ws[j + 1]
        with np.errstate(invalid="ignore"):
            out[i] = np.where(w >= 0, np.sqrt(np.maximum(w, 0.0) / tt), np.nan)
    return out
