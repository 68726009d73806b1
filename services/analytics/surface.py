"""Raw-SVI volatility surface: a deterministic NumPy-only fitter and arbitrage checks.

Conventions: ``k = ln(K/F)`` is log forward moneyness, ``t`` years (ACT/365), ``w = iv^2 * t`` is
total implied variance. A slice is raw SVI (Gatheral 2004):

    w(k) = a + b * (rho * (k - m) + sqrt((k - m)^2 + sigma^2))

Fitting (Zeliade's quasi-explicit method, 2009): for fixed (m, sigma) with y = (k - m)/sigma the
slice is linear in (a, d, c) = (a, rho*b*sigma, b*sigma): w = a + d*y + c*sqrt(y^2 + 1). The inner
problem is a least squares with the convex domain 0 <= c <= 4 sigma, |d| <= c, |d| <= 4 sigma - c,
solved exactly (interior solution, else the best point on the domain's four edges). The outer
problem over (m, sigma) is a fixed grid search (every slice's grid evaluated in one batched NumPy
call) followed by a Nelder-Mead polish from the best grid point. No random starts, so the same
quotes always give the same parameters.

Arbitrage checks: butterfly (Gatheral & Jacquier 2014) needs the density factor

    g(k) = (1 - k w'/(2w))^2 - (w'^2/4) (1/w + 1/4) + w''/2 >= 0

on a dense k grid (and w > 0); calendar arbitrage is absent when w(k, t) is non-decreasing in t at
every grid moneyness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: outer grid: m over the quoted k range (plus margin) and sigma on a log grid
GRID_M = 15
GRID_SIGMA = 12
SIGMA_MIN = 1e-3
SIGMA_MAX = 2.0
NM_ITER = 200
NM_TOL = 1e-12
#: Roger Lee's moment bound on the wings' total-variance slope: b (1 + |rho|) <= 2
LEE_SLOPE = 2.0
DENSITY_POINTS = 801
#: weight of the arbitrage penalties in the outer objective, and the coarse grid they use
PENALTY = 1e5
PENALTY_POINTS = 61
DENSITY_MARGIN = 1.0
DENSITY_TOL = -1e-9
MIN_POINTS = 5


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
class SliceFit:
    """A fitted slice with its quality and butterfly-arbitrage figures."""

    label: str
    t: float
    params: SviParams
    rmse_vol_points: float
    points: int
    butterfly_arbitrage_free: bool
    min_density: float


@dataclass(frozen=True)
class SurfaceFit:
    """Fitted slices (nearest first) and the calendar check on ``calendar_grid``."""

    slices: list[SliceFit]
    calendar_arbitrage_free: bool


def _inner(k: F64, w: F64, m: float, sigma: float) -> tuple[float, float, float, float]:
    """Best (a, d, c) for fixed (m, sigma) under the quasi-explicit domain; returns (sse, a, d, c)."""
    y = (k - m) / sigma
    z = np.sqrt(y * y + 1.0)
    best = (math.inf, 0.0, 0.0, 0.0)
    x = np.column_stack([np.ones_like(y), y, z])
    sol, *_ = np.linalg.lstsq(x, w, rcond=None)
    a, d, c = (float(v) for v in sol)
    lim = LEE_SLOPE * sigma
    if 0.0 <= c <= lim and abs(d) <= c and abs(d) <= lim - c:
        r = x @ sol - w
        return float(r @ r), a, d, c
    # Edges of the (d, c) domain: vertices (0, 0), (L/2, L/2), (0, L), (-L/2, L/2), L = lim.
    verts = [(0.0, 0.0), (lim / 2, lim / 2), (0.0, lim), (-lim / 2, lim / 2)]
    for i in range(4):
        d0, c0 = verts[i]
        d1, c1 = verts[(i + 1) % 4]
        dd, dc = d1 - d0, c1 - c0
        base = w - d0 * y - c0 * z
        reg = dd * y + dc * z
        xe = np.column_stack([np.ones_like(y), reg])
        se, *_ = np.linalg.lstsq(xe, base, rcond=None)
        tt = min(max(float(se[1]), 0.0), 1.0)
        ae = float(np.mean(base - tt * reg))
        de, ce = d0 + tt * dd, c0 + tt * dc
        r = ae + de * y + ce * z - w
        sse = float(r @ r)
        if sse < best[0]:
            best = (sse, ae, de, ce)
    return best


def _objective(k: F64, w: F64, m: float, log_sigma: float) -> float:
    m = min(max(m, float(k.min())), float(k.max()))
    sigma = math.exp(min(max(log_sigma, math.log(SIGMA_MIN)), math.log(SIGMA_MAX)))
    sse, a, d, c = _inner(k, w, m, sigma)
    # Penalise negative minimum variance a + sqrt(c^2 - d^2) (raw-SVI min is a + b sigma sqrt(1-rho^2))
    # and butterfly arbitrage (g < 0) on a coarse grid around the quotes.
    wmin = a + math.sqrt(max(c * c - d * d, 0.0))
    pen = PENALTY * wmin * wmin if wmin < 0 else 0.0
    if c > 0:
        lo, hi = float(k.min()), float(k.max())
        grid = np.linspace(lo - DENSITY_MARGIN, hi + DENSITY_MARGIN, PENALTY_POINTS)
        g = SviParams(a, c / sigma, d / c, m, sigma).density_factor(grid)
        neg = np.minimum(np.nan_to_num(g, nan=-1.0, neginf=-1.0), 0.0)
        pen += PENALTY * float(neg @ neg) * float(np.mean(w * w))
    return sse + pen


def _objective_batch(k: F64, w: F64, valid: npt.NDArray[np.bool_], m: F64, log_sigma: F64) -> F64:
    """:func:`_objective` for B candidates at once: row b is (k[b], w[b]) masked by ``valid[b]``
    (rows may belong to different slices, padded to one width) at (m[b], log_sigma[b]).

    The inner least squares are solved from the weighted normal equations (pseudo-inverse of the
    3x3 / closed-form 2-parameter fits) instead of ``lstsq`` per candidate: the same minimisers up
    to rounding.
    """
    wt = valid.astype(np.float64)
    cnt = wt.sum(axis=1)
    lo = np.where(valid, k, np.inf).min(axis=1)
    hi = np.where(valid, k, -np.inf).max(axis=1)
    m = np.minimum(np.maximum(m, lo), hi)
    sigma = np.exp(np.minimum(np.maximum(log_sigma, math.log(SIGMA_MIN)), math.log(SIGMA_MAX)))
    y = (k - m[:, None]) / sigma[:, None]
    z = np.sqrt(y * y + 1.0)
    cols = np.stack([np.ones_like(y), y, z], axis=2) * wt[:, :, None]  # (B, P, 3), zero on padding
    xtx = np.einsum("bpi,bpj->bij", cols, cols)
    xty = np.einsum("bpi,bp->bi", cols, w)
    sol = np.einsum("bij,bj->bi", np.linalg.pinv(xtx), xty)
    a, d, c = sol[:, 0], sol[:, 1], sol[:, 2]
    lim = LEE_SLOPE * sigma

    def sse(a_: F64, d_: F64, c_: F64) -> F64:
        r = (a_[:, None] + d_[:, None] * y + c_[:, None] * z - w) * wt
        return np.asarray(np.einsum("bp,bp->b", r, r), dtype=np.float64)

    best_sse = sse(a, d, c)
    inside = (c >= 0.0) & (c <= lim) & (np.abs(d) <= c) & (np.abs(d) <= lim - c)
    # Edges of the (d, c) domain, as in _inner: the best point on each of the four edges.
    verts = [(0.0, 0.0), (0.5, 0.5), (0.0, 1.0), (-0.5, 0.5)]  # in units of lim
    e_best = np.full(m.shape, np.inf)
    ea, ed, ec = np.zeros(m.shape), np.zeros(m.shape), np.zeros(m.shape)
    for i in range(4):
        d0, c0 = verts[i][0] * lim, verts[i][1] * lim
        dd, dc = verts[(i + 1) % 4][0] * lim - d0, verts[(i + 1) % 4][1] * lim - c0
        base = w - d0[:, None] * y - c0[:, None] * z
        reg = dd[:, None] * y + dc[:, None] * z
        mb = (base * wt).sum(axis=1) / cnt
        mr = (reg * wt).sum(axis=1) / cnt
        var = (((reg - mr[:, None]) ** 2) * wt).sum(axis=1)
        cov = ((reg - mr[:, None]) * (base - mb[:, None]) * wt).sum(axis=1)
        slope = np.divide(cov, var, out=np.zeros_like(cov), where=var > 0)
        tt = np.minimum(np.maximum(slope, 0.0), 1.0)
        ae = mb - tt * mr
        de, ce = d0 + tt * dd, c0 + tt * dc
        se = sse(ae, de, ce)
        better = se < e_best
        e_best = np.where(better, se, e_best)
        ea, ed, ec = np.where(better, ae, ea), np.where(better, de, ed), np.where(better, ce, ec)
    a, d, c = np.where(inside, a, ea), np.where(inside, d, ed), np.where(inside, c, ec)
    total = np.where(inside, best_sse, e_best)
    wmin = a + np.sqrt(np.maximum(c * c - d * d, 0.0))
    total = total + np.where(wmin < 0, PENALTY * wmin * wmin, 0.0)
    # butterfly penalty on PENALTY_POINTS moneyness per row (where c > 0)
    frac = np.linspace(0.0, 1.0, PENALTY_POINTS)
    grid = (lo - DENSITY_MARGIN)[:, None] + ((hi - lo) + 2 * DENSITY_MARGIN)[:, None] * frac[None, :]
    pos = c > 0
    b_ = np.where(pos, c / sigma, 0.0)
    rho = np.divide(d, c, out=np.zeros_like(d), where=pos)
    x = grid - m[:, None]
    root = np.sqrt(x * x + (sigma * sigma)[:, None])
    wv = a[:, None] + b_[:, None] * (rho[:, None] * x + root)
    w1 = b_[:, None] * (rho[:, None] + x / root)
    w2 = b_[:, None] * (sigma * sigma)[:, None] / root**3
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - grid * w1 / (2.0 * wv)) ** 2 - (w1 * w1 / 4.0) * (1.0 / wv + 0.25) + w2 / 2.0
    g = np.where(wv > 0, g, -np.inf)
    neg = np.minimum(np.nan_to_num(g, nan=-1.0, neginf=-1.0), 0.0)
    mean_w2 = (w * w * wt).sum(axis=1) / cnt
    total = total + np.where(pos, PENALTY * np.einsum("bp,bp->b", neg, neg) * mean_w2, 0.0)
    return np.asarray(total, dtype=np.float64)


def _nelder_mead(k: F64, w: F64, x0: tuple[float, float], step: tuple[float, float]) -> tuple[float, float]:
    """Plain deterministic Nelder-Mead over (m, log sigma)."""
    pts = [np.array(x0), np.array([x0[0] + step[0], x0[1]]), np.array([x0[0], x0[1] + step[1]])]
    vals = [_objective(k, w, float(p[0]), float(p[1])) for p in pts]
    for _ in range(NM_ITER):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) <= NM_TOL * (abs(vals[0]) + NM_TOL):
            break
        c = (pts[0] + pts[1]) / 2.0
        xr = c + (c - pts[2])
        fr = _objective(k, w, float(xr[0]), float(xr[1]))
        if fr < vals[0]:
            xe = c + 2.0 * (c - pts[2])
            fe = _objective(k, w, float(xe[0]), float(xe[1]))
            pts[2], vals[2] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[1]:
            pts[2], vals[2] = xr, fr
        else:
            xc = c + 0.5 * (pts[2] - c)
            fc = _objective(k, w, float(xc[0]), float(xc[1]))
            if fc < vals[2]:
                pts[2], vals[2] = xc, fc
            else:
                pts[1] = pts[0] + 0.5 * (pts[1] - pts[0])
                pts[2] = pts[0] + 0.5 * (pts[2] - pts[0])
                vals[1] = _objective(k, w, float(pts[1][0]), float(pts[1][1]))
                vals[2] = _objective(k, w, float(pts[2][0]), float(pts[2][1]))
    i = int(np.argmin(vals))
    return float(pts[i][0]), float(pts[i][1])


def _clean(k: Sequence[float] | F64, iv: Sequence[float] | F64, t: float) -> tuple[F64, F64]:
    """Finite positive quotes of a slice as (k, total variance); ValueError when unusable."""
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t must be a positive number of years, got {t}")
    ka = np.asarray(k, dtype=np.float64)
    va = np.asarray(iv, dtype=np.float64)
    ok = np.isfinite(ka) & np.isfinite(va) & (va > 0)
    ka, va = ka[ok], va[ok]
    if ka.size < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} quotes with a finite positive IV, got {ka.size}")
    return ka, va * va * t


def _grid(ka: F64) -> tuple[F64, F64]:
    """The outer grid of a slice: m values (GRID_M) and sigma values (GRID_SIGMA)."""
    lo, hi = float(ka.min()), float(ka.max())
    span = max(hi - lo, 1e-3)
    ms = np.linspace(lo, hi, GRID_M)
    sigmas = np.geomspace(max(SIGMA_MIN, span / 200.0), min(SIGMA_MAX, 2.0 * span + 0.05), GRID_SIGMA)
    return ms, sigmas


def _grid_search(slices: Sequence[tuple[F64, F64]]) -> list[tuple[float, float, float]]:
    """Best (objective, m, log sigma) on each slice's grid; every candidate of every slice is
    evaluated in one batched call (first minimum in m-major order, as a nested loop would find)."""
    if not slices:
        return []
    width = max(ka.size for ka, _ in slices)
    per = GRID_M * GRID_SIGMA
    rows = len(slices) * per
    k = np.zeros((rows, width))
    w = np.zeros((rows, width))
    valid = np.zeros((rows, width), dtype=np.bool_)
    m = np.empty(rows)
    ls = np.empty(rows)
    for i, (ka, wa) in enumerate(slices):
        sl = slice(i * per, (i + 1) * per)
        k[sl, : ka.size], w[sl, : ka.size], valid[sl, : ka.size] = ka, wa, True
        k[sl, ka.size :] = ka[0]
        ms, sigmas = _grid(ka)
        m[sl] = np.repeat(ms, GRID_SIGMA)
        ls[sl] = np.tile(np.log(sigmas), GRID_M)
    f = _objective_batch(k, w, valid, m, ls).reshape(len(slices), per)
    out = []
    for i in range(len(slices)):
        j = int(np.argmin(np.where(np.isnan(f[i]), np.inf, f[i])))
        out.append((float(f[i, j]), float(m[i * per + j]), float(ls[i * per + j])))
    return out


def _polish(ka: F64, w: F64, best: tuple[float, float, float]) -> SviParams:
    """Nelder-Mead from the best grid point (kept if the polish does not improve), then the params."""
    ms, sigmas = _grid(ka)
    dm = float(ms[1] - ms[0])
    dls = float(np.log(sigmas[1] / sigmas[0]))
    m, ls = _nelder_mead(ka, w, (best[1], best[2]), (dm, dls))
    if _objective(ka, w, m, ls) > best[0]:
        m, ls = best[1], best[2]
    m = min(max(m, float(ka.min())), float(ka.max()))
    sigma = math.exp(min(max(ls, math.log(SIGMA_MIN)), math.log(SIGMA_MAX)))
    _, a, d, c = _inner(ka, w, m, sigma)
    b = c / sigma
    rho = d / c if c > 0 else 0.0
    return SviParams(a=a, b=b, rho=min(max(rho, -1.0), 1.0), m=m, sigma=sigma)


def fit_slice(k: Sequence[float] | F64, iv: Sequence[float] | F64, t: float) -> SviParams:
    """Fit raw SVI to implied vols ``iv`` at log-moneyness ``k`` for maturity ``t`` (years).

    Raises ValueError when fewer than 5 finite points remain or ``t`` is not positive.
    """
    ka, w = _clean(k, iv, t)
    (best,) = _grid_search([(ka, w)])
    return _polish(ka, w, best)


def slice_iv(params: SviParams, k: F64, t: float) -> F64:
    """Implied vol of a slice at ``k`` (NaN where total variance is negative)."""
    w = params.total_variance(k)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.where(w >= 0, np.sqrt(np.maximum(w, 0.0) / t), np.nan), dtype=np.float64)


def butterfly_check(params: SviParams, k_lo: float, k_hi: float) -> tuple[bool, float]:
    """(free, min g) over a dense grid widened by DENSITY_MARGIN either side of [k_lo, k_hi]."""
    grid = np.linspace(k_lo - DENSITY_MARGIN, k_hi + DENSITY_MARGIN, DENSITY_POINTS)
    g = params.density_factor(grid)
    mn = float(np.min(g))
    return bool(mn >= DENSITY_TOL), mn


def fit_surface(quotes: Sequence[tuple[str, float, F64, F64]], calendar_grid: F64 | None = None) -> SurfaceFit:
    """Fit each (label, t, k, iv) slice; check butterfly per slice and calendar across slices.

    Slices that cannot be fitted (too few points) are left out. ``calendar_grid`` defaults to the
    union range of quoted k on 61 points.
    """
    fits: list[SliceFit] = []
    k_lo, k_hi = math.inf, -math.inf
    usable: list[tuple[str, float, F64, F64, F64]] = []
    for label, t, k, iv in sorted(quotes, key=lambda q: q[1]):
        ka = np.asarray(k, dtype=np.float64)
        va = np.asarray(iv, dtype=np.float64)
        ok = np.isfinite(ka) & np.isfinite(va) & (va > 0)
        if int(ok.sum()) < MIN_POINTS or not t > 0:
            continue
        kc, wc = _clean(ka[ok], va[ok], t)
        usable.append((label, float(t), kc, wc, va[ok]))
    bests = _grid_search([(kc, wc) for _, _, kc, wc, _ in usable])  # all slices' grids in one batch
    for (label, t, kc, wc, vc), best in zip(usable, bests, strict=True):
        p = _polish(kc, wc, best)
        resid = slice_iv(p, kc, t) - vc
        rmse = float(np.sqrt(np.nanmean(resid * resid)) * 100.0)
        lo, hi = float(kc.min()), float(kc.max())
        k_lo, k_hi = min(k_lo, lo), max(k_hi, hi)
        free, mn = butterfly_check(p, lo, hi)
        fits.append(SliceFit(label, t, p, rmse, int(kc.size), free, mn))
    if calendar_grid is None:
        calendar_grid = np.linspace(k_lo, k_hi, 61) if fits else np.zeros(0)
    return SurfaceFit(slices=fits, calendar_arbitrage_free=calendar_free(fits, calendar_grid))


def calendar_free(fits: Sequence[SliceFit], k: F64) -> bool:
    """True when total variance is non-decreasing in t at every ``k`` (tolerance 1e-12)."""
    if len(fits) < 2 or k.size == 0:
        return True
    ws = np.vstack([f.params.total_variance(k) for f in fits])
    return bool(np.all(np.diff(ws, axis=0) >= -1e-12))


def surface_grid(fits: Sequence[SliceFit], k: F64, t: F64) -> F64:
    """IV on the grid (len(t), len(k)).

    Between fitted maturities total variance is interpolated linearly in t (which keeps calendar
    freedom); before the first slice w scales with t/t1 (flat IV); after the last the last slice's
    IV is held flat.
    """
    out = np.full((t.size, k.size), np.nan)
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
