"""Chart patterns, price levels and trend from OHLCV bars (plain Python over compiled pivots).

Everything here is built on swing pivots from :func:`aiots.core.patterns.swing_pivots`: bar ``i``
is a pivot high when its high beats the ``pivot_left`` highs before it and is not beaten by the
``pivot_right`` highs after it (lows mirror that). Distances are measured in ATR (a simple mean
of the true range over ``atr_period`` bars, so the detector adapts to each instrument's
volatility) or as a fraction of price, whichever is larger.

Detected (see :class:`ChartParams` for every threshold):

* **levels**: pivots clustered by price (sorted, a new cluster starts when a pivot is more than
  the tolerance above the running cluster mean); clusters with ``min_touches`` pivots become
  support (below the last close) or resistance (above it), with touch count and first/last touch;
* **trend**: least-squares line through log closes of the last ``trend_window`` bars: slope per
  bar, R^2, and ADX (from :mod:`aiots.core.indicators` when it is built);
* **breakout / breakdown**: a close through a level's zone (the zone from pivots already
  confirmed at that bar, so no look-ahead) after a close inside or on the other side, with volume
  above ``volume_factor`` x its ``volume_window``-bar mean;
* **double top / bottom**, **head and shoulders** (and inverse), **ascending / descending /
  symmetrical triangles**; each marked ``confirmed`` once a close crosses its neckline (or the
  triangle's breakout side).

Results are frozen dataclasses; indices are bar positions in the inputs; prices are in the input
unit (dollars); ``direction`` is +1 bullish/up, -1 bearish/down, 0 neutral; ``strength`` is 0..1.

Size: the pattern detectors share the pivot and ATR helpers and :class:`ChartParams`; each detector
is one section below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from aiots.core.patterns import _vector, swing_pivots

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ChartParams:
    """Detector thresholds. Tolerances are ``max(x_atr * ATR, x_pct * price)``."""

    pivot_left: int = 5
    pivot_right: int = 5
    atr_period: int = 14
    level_tol_atr: float = 0.5
    level_tol_pct: float = 0.004
    min_touches: int = 2
    max_levels: int = 12
    trend_window: int = 100
    trend_min_r2: float = 0.3
    adx_period: int = 14
    volume_window: int = 20
    volume_factor: float = 1.5
    equal_tol_atr: float = 1.0
    equal_tol_pct: float = 0.01
    depth_atr: float = 3.0
    depth_pct: float = 0.03
    max_pattern_bars: int = 150
    triangle_fit_atr: float = 0.6
    triangle_flat_atr: float = 1.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad parameter and its value."""
        ints = {
            "pivot_left": (self.pivot_left, 1),
            "pivot_right": (self.pivot_right, 1),
            "atr_period": (self.atr_period, 1),
            "min_touches": (self.min_touches, 1),
            "max_levels": (self.max_levels, 0),
            "trend_window": (self.trend_window, 0),
            "adx_period": (self.adx_period, 2),
            "volume_window": (self.volume_window, 1),
            "max_pattern_bars": (self.max_pattern_bars, 3),
        }
        for name, (value, low) in ints.items():
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        floats = (
            "level_tol_atr",
            "level_tol_pct",
            "trend_min_r2",
            "volume_factor",
            "equal_tol_atr",
            "equal_tol_pct",
            "depth_atr",
            "depth_pct",
            "triangle_fit_atr",
            "triangle_flat_atr",
        )
        for name in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


@dataclass(frozen=True, slots=True)
class Level:
    """A support/resistance zone from clustered pivots (prices in the input unit)."""

    kind: Literal["support", "resistance"]
    price: float
    lower: float
    upper: float
    touches: int
    first_index: int
    last_index: int
    strength: float


@dataclass(frozen=True, slots=True)
class Trend:
    """Least-squares trend of log close over ``start_index..end_index``; slope is per bar."""

    direction: int
    slope: float
    r_squared: float
    adx: float | None
    strength: float
    start_index: int
    end_index: int


@dataclass(frozen=True, slots=True)
class ChartPattern:
    """One detected pattern; ``key_prices`` names its defining prices (peaks, neckline, ...)."""

    kind: str
    direction: int
    start_index: int
    end_index: int
    key_prices: dict[str, float]
    strength: float
    confirmed: bool


@dataclass(frozen=True, slots=True)
class ChartAnalysis:
    """Everything :func:`detect_chart_patterns` found."""

    levels: tuple[Level, ...]
    trend: Trend
    patterns: tuple[ChartPattern, ...]
    pivot_highs: tuple[int, ...] = field(default=())
    pivot_lows: tuple[int, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _clip01(x: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, x))


def mean_true_range(high: F64, low: F64, close: F64, period: int) -> F64:
    """Simple mean of the true range over ``period`` bars (NaN before enough bars)."""
    n = close.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    prev = np.concatenate([[close[0]], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    tr[0] = high[0] - low[0]
    tr = np.where(np.isfinite(tr), tr, np.nan)
    if n >= period:
        windows = np.lib.stride_tricks.sliding_window_view(tr, period)
        with np.errstate(all="ignore"):
            valid = np.isfinite(windows).sum(axis=1)
            sums = np.nansum(windows, axis=1)
            out[period - 1 :] = np.where(valid > 0, sums / np.maximum(valid, 1), np.nan)
    return out


def _fill_scale(atr: F64, close: F64) -> F64:
    """ATR with gaps filled (nearest earlier value, else the median, else 1% of price)."""
    scale = atr.copy()
    finite = np.isfinite(scale) & (scale > 0)
    if finite.any():
        idx = np.where(finite, np.arange(scale.size), 0)
        np.maximum.accumulate(idx, out=idx)
        scale = scale[idx]
        first = int(np.argmax(finite))
        scale[:first] = scale[first]
    else:
        with np.errstate(all="ignore"):
            ref = np.nanmedian(np.abs(close)) if np.isfinite(close).any() else 1.0
        scale = np.full(close.size, 0.01 * (ref if math.isfinite(ref) and ref > 0 else 1.0))
    return scale


def _adx_last(high: F64, low: F64, close: F64, period: int) -> float | None:
    """Last finite ADX from aiots.core.indicators, or None where that module is unavailable."""
    try:
        from aiots.core import indicators
    except ImportError:
        return None
    try:
        values = np.asarray(indicators.adx(high, low, close, period=period), dtype=np.float64)
    except (TypeError, ValueError, AttributeError):
        return None
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


class _Ctx:
    """Bars, pivots and scales shared by the detectors."""

    def __init__(self, o: F64, h: F64, lo: F64, c: F64, v: F64 | None, p: ChartParams) -> None:
        self.o, self.h, self.lo, self.c, self.v, self.p = o, h, lo, c, v, p
        self.n = c.size
        self.atr = _fill_scale(mean_true_range(h, lo, c, p.atr_period), c)
        hi_idx, lo_idx = swing_pivots(h, lo, p.pivot_left, p.pivot_right)
        self.hi_idx = [int(i) for i in hi_idx]
        self.lo_idx = [int(i) for i in lo_idx]

    def tol(self, i: int, k_atr: float, k_pct: float, price: float) -> float:
        return max(k_atr * float(self.atr[min(max(i, 0), self.n - 1)]), k_pct * abs(price))


# ---------------------------------------------------------------------------------------------
# Levels, trend and breakouts
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cluster:
    prices: list[float]
    indices: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.prices))


def _clusters(ctx: _Ctx) -> list[_Cluster]:
    pts = [(float(ctx.h[i]), i) for i in ctx.hi_idx] + [(float(ctx.lo[i]), i) for i in ctx.lo_idx]
    pts.sort()
    out: list[_Cluster] = []
    last_bar = ctx.n - 1
    for price, i in pts:
        if out and price - out[-1].mean <= ctx.tol(last_bar, ctx.p.level_tol_atr, ctx.p.level_tol_pct, price):
            out[-1].prices.append(price)
            out[-1].indices.append(i)
        else:
            out.append(_Cluster([price], [i]))
    return out


def find_levels(ctx: _Ctx) -> tuple[list[Level], list[_Cluster]]:
    """Support/resistance levels from pivot clusters with at least ``min_touches`` pivots."""
    last_close = ctx.c[np.isfinite(ctx.c)][-1] if np.isfinite(ctx.c).any() else np.nan
    kept: list[tuple[Level, _Cluster]] = []
    for cl in _clusters(ctx):
        if len(cl.prices) < ctx.p.min_touches:
            continue
        price = cl.mean
        touches = len(cl.prices)
        recency = max(cl.indices) / max(ctx.n - 1, 1)
        strength = _clip01(0.7 * min(touches / 5.0, 1.0) + 0.3 * recency)
        kind: Literal["support", "resistance"] = "resistance" if price > last_close else "support"
        level = Level(
            kind=kind,
            price=price,
            lower=min(cl.prices),
            upper=max(cl.prices),
            touches=touches,
            first_index=min(cl.indices),
            last_index=max(cl.indices),
            strength=strength,
        )
        kept.append((level, cl))
    kept.sort(key=lambda lc: -lc[0].strength)
    kept = kept[: ctx.p.max_levels]
    kept.sort(key=lambda lc: lc[0].price)
    return [lv for lv, _ in kept], [cl for _, cl in kept]


def find_trend(ctx: _Ctx) -> Trend:
    """Log-close regression over the last ``trend_window`` bars (0 = all) plus ADX."""
    n = ctx.n
    start = 0 if ctx.p.trend_window == 0 else max(0, n - ctx.p.trend_window)
    with np.errstate(all="ignore"):
        y = np.log(ctx.c[start:])
    x = np.arange(start, n, dtype=np.float64)
    ok = np.isfinite(y)
    adx = _adx_last(ctx.h, ctx.lo, ctx.c, ctx.p.adx_period) if n > 2 * ctx.p.adx_period else None
    if ok.sum() < 3:
        return Trend(0, 0.0, 0.0, adx, 0.0, start, max(n - 1, 0))
    x, y = x[ok], y[ok]
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    syy = float(((y - ym) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / sxx) if sxx > 0 else 0.0
    r2 = _clip01(slope * slope * sxx / syy) if syy > 0 else 0.0
    direction = 0
    if r2 >= ctx.p.trend_min_r2 and slope != 0.0:
        direction = 1 if slope > 0 else -1
    strength = r2 if adx is None else 0.5 * r2 + 0.5 * _clip01(adx / 50.0)
    return Trend(direction, slope, r2, adx, _clip01(strength), start, n - 1)


def find_breakouts(ctx: _Ctx, clusters: list[_Cluster], require_volume: bool) -> list[ChartPattern]:
    """Closes through a level zone, the zone built only from pivots confirmed before that bar."""
    p = ctx.p
    n = ctx.n
    out: list[ChartPattern] = []
    ratio = np.full(n, np.nan)
    if ctx.v is not None and n > p.volume_window:
        v = ctx.v
        csum = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(v), v, 0.0))])
        tv = np.arange(p.volume_window, n)
        avg = (csum[tv] - csum[tv - p.volume_window]) / p.volume_window
        with np.errstate(all="ignore"):
            ratio[tv] = np.where(avg > 0, v[tv] / avg, np.nan)
    bars = np.arange(n)
    for cl in clusters:
        order = np.argsort(np.asarray(cl.indices) + p.pivot_right, kind="stable")
        idx = np.asarray(cl.indices)[order]
        prices = np.asarray(cl.prices)[order]
        known = idx + p.pivot_right  # bar at which each pivot is confirmed
        m = np.searchsorted(known, bars, side="left")  # pivots confirmed before bar t
        live = m >= p.min_touches
        live[0] = False
        if not live.any():
            continue
        take = np.maximum(m - 1, 0)
        upper = np.maximum.accumulate(prices)[take]
        lower = np.minimum.accumulate(prices)[take]
        mean = (np.cumsum(prices) / np.arange(1, prices.size + 1))[take]
        prev = np.concatenate([[np.nan], ctx.c[:-1]])
        up = live & (ctx.c > upper) & (upper >= prev)
        down = live & (ctx.c < lower) & (lower <= prev)
        for hit in np.flatnonzero(up | down):
            t = int(hit)
            direction = 1 if up[t] else -1
            r = float(ratio[t])
            confirmed = math.isfinite(r) and r > p.volume_factor
            if require_volume and not confirmed:
                continue
            vol_score = _clip01(r / (2.0 * p.volume_factor)) if math.isfinite(r) else 0.0
            strength = _clip01(0.5 * min(int(m[t]) / 5.0, 1.0) + 0.5 * vol_score)
            out.append(
                ChartPattern(
                    kind="breakout" if direction == 1 else "breakdown",
                    direction=direction,
                    start_index=int(idx[0]),
                    end_index=t,
                    key_prices={
                        "level": float(mean[t]),
                        "through": float(upper[t] if direction == 1 else lower[t]),
                        "close": float(ctx.c[t]),
                    },
                    strength=strength,
                    confirmed=confirmed,
                )
            )
    out.sort(key=lambda cp: cp.end_index)
    return out


# ---------------------------------------------------------------------------------------------
# Reversal patterns
# ---------------------------------------------------------------------------------------------


def find_double_tops(ctx: _Ctx, bottoms: bool) -> list[ChartPattern]:
    """Two peaks (troughs) at about the same price with a deep trough (peak) between them.

    Needs: peaks within ``equal_tol``, the intervening extreme at least ``depth`` away, a prior
    move into the first peak from beyond that extreme, no higher peak (lower trough) between, and
    no close beyond the peaks after the second before confirmation. Confirmed when a close
    crosses the intervening extreme (the neckline) within the pattern's own width after it.
    """
    p = ctx.p
    piv = ctx.lo_idx if bottoms else ctx.hi_idx
    sign = -1.0 if bottoms else 1.0  # work on sign * price so both cases read as tops
    ext = (-ctx.lo) if bottoms else ctx.h
    opp = (-ctx.h) if bottoms else ctx.lo
    sc = sign * ctx.c
    out: list[ChartPattern] = []
    for a in range(len(piv)):
        i1 = piv[a]
        for b in range(a + 1, min(a + 4, len(piv))):
            i2 = piv[b]
            width = i2 - i1
            if width > p.max_pattern_bars:
                break
            if width < 2 * p.pivot_right:
                continue
            p1, p2 = float(ext[i1]), float(ext[i2])
            top = max(p1, p2)
            if float(np.max(ext[i1 + 1 : i2])) > top:
                break
            eq = ctx.tol(i2, p.equal_tol_atr, p.equal_tol_pct, p2)
            if abs(p1 - p2) > eq:
                continue
            k = i1 + int(np.argmin(opp[i1 + 1 : i2])) + 1
            trough = float(opp[k])
            depth = min(p1, p2) - trough
            need = ctx.tol(i2, p.depth_atr, p.depth_pct, p2)
            if depth < need:
                continue
            before = opp[max(0, i1 - width) : i1]
            if before.size == 0 or float(np.min(before)) > trough:
                continue  # no prior move into the first peak
            horizon = min(ctx.n, i2 + width + 1)
            seg = sc[i2 + 1 : horizon]
            below = np.flatnonzero(seg < trough)
            above = np.flatnonzero(seg > top + eq)
            conf = i2 + 1 + int(below[0]) if below.size else -1
            if above.size and (conf == -1 or i2 + 1 + int(above[0]) < conf):
                continue  # took out the peaks before the neckline: not a top
            confirmed = conf != -1
            similarity = 1.0 - abs(p1 - p2) / eq if eq > 0 else 1.0
            strength = _clip01(0.35 * similarity + 0.35 * min(depth / (2 * need), 1.0) + 0.3 * confirmed)
            kind = "double_bottom" if bottoms else "double_top"
            out.append(
                ChartPattern(
                    kind=kind,
                    direction=1 if bottoms else -1,
                    start_index=i1,
                    end_index=conf if confirmed else i2,
                    key_prices={
                        "first": sign * p1,
                        "second": sign * p2,
                        "neckline": sign * trough,
                        "target": sign * (trough - depth),
                    },
                    strength=strength,
                    confirmed=confirmed,
                )
            )
            break
    return _dedupe(out)


def find_head_and_shoulders(ctx: _Ctx, inverse: bool) -> list[ChartPattern]:
    """Three consecutive pivot highs (lows): a head beyond two similar shoulders, a neckline
    through the two troughs between them; confirmed by a close through the neckline."""
    p = ctx.p
    piv = ctx.lo_idx if inverse else ctx.hi_idx
    sign = -1.0 if inverse else 1.0
    ext = (-ctx.lo) if inverse else ctx.h
    opp = (-ctx.h) if inverse else ctx.lo
    sc = (-ctx.c) if inverse else ctx.c
    out: list[ChartPattern] = []
    for a in range(len(piv) - 2):
        il, ih, ir = piv[a], piv[a + 1], piv[a + 2]
        if ir - il > p.max_pattern_bars:
            continue
        span_l, span_r = ih - il, ir - ih
        if max(span_l, span_r) > 3 * min(span_l, span_r):
            continue
        left, head, right = float(ext[il]), float(ext[ih]), float(ext[ir])
        eq = ctx.tol(ir, p.equal_tol_atr, p.equal_tol_pct, right)
        margin = ctx.tol(ih, p.depth_atr / 3.0, p.depth_pct / 3.0, head)
        if head - max(left, right) < margin or abs(left - right) > 1.5 * eq:
            continue
        t1 = il + int(np.argmin(opp[il + 1 : ih])) + 1
        t2 = ih + int(np.argmin(opp[ih + 1 : ir])) + 1
        n1, n2 = float(opp[t1]), float(opp[t2])
        need = ctx.tol(ih, p.depth_atr, p.depth_pct, head)
        if head - max(n1, n2) < need or min(left, right) - max(n1, n2) < need / 3.0:
            continue
        if abs(n1 - n2) > 0.5 * (head - max(n1, n2)):
            continue
        before = opp[max(0, il - (ir - il)) : il]
        if before.size == 0 or float(np.min(before)) > min(n1, n2):
            continue
        slope = (n2 - n1) / (t2 - t1)
        horizon = min(ctx.n, ir + (ir - il) + 1)
        conf = -1
        for t in range(ir + 1, horizon):
            if sc[t] < n2 + slope * (t - t2):
                conf = t
                break
            if sc[t] > head:
                break
        confirmed = conf != -1
        sym = 1.0 - abs(left - right) / (1.5 * eq) if eq > 0 else 1.0
        depth = head - max(n1, n2)
        strength = _clip01(0.35 * sym + 0.35 * min(depth / (2 * need), 1.0) + 0.3 * confirmed)
        out.append(
            ChartPattern(
                kind="inverse_head_and_shoulders" if inverse else "head_and_shoulders",
                direction=1 if inverse else -1,
                start_index=il,
                end_index=conf if confirmed else ir,
                key_prices={
                    "left_shoulder": sign * left,
                    "head": sign * head,
                    "right_shoulder": sign * right,
                    "neckline_left": sign * n1,
                    "neckline_right": sign * n2,
                    "target": sign * (n2 - depth),
                },
                strength=strength,
                confirmed=confirmed,
            )
        )
    return _dedupe(out)


# ---------------------------------------------------------------------------------------------
# Triangles
# ---------------------------------------------------------------------------------------------


def _line(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares (slope, intercept, max abs residual) of a handful of points."""
    k = len(x)
    xm = sum(x) / k
    ym = sum(y) / k
    sxx = sum((xi - xm) ** 2 for xi in x)
    slope = sum((xi - xm) * (yi - ym) for xi, yi in zip(x, y, strict=True)) / sxx if sxx > 0 else 0.0
    intercept = ym - slope * xm
    resid = max(abs(yi - (slope * xi + intercept)) for xi, yi in zip(x, y, strict=True))
    return slope, intercept, resid


def find_triangles(ctx: _Ctx) -> list[ChartPattern]:
    """Converging trend lines through runs of 6-7 consecutive alternating pivots.

    The lines are least-squares fits through the pivot highs and the pivot lows (each within
    ``triangle_fit_atr`` ATR, or ``level_tol_pct`` of price, of its line); a line is flat when it
    moves less than ``triangle_flat_atr`` ATR, or a quarter of the other line's move, over the
    run. Ascending = flat top + rising lows, descending = falling highs + flat bottom,
    symmetrical = falling highs + rising lows. The lines must not
    have crossed by the last pivot and the range must shrink by at least a third. Confirmed by
    a close beyond the breakout side (ascending: above the top, descending: below the bottom,
    symmetrical: either, which sets its direction) within the pattern's width after it.
    """
    p = ctx.p
    piv = sorted([(i, 1) for i in ctx.hi_idx] + [(i, -1) for i in ctx.lo_idx])
    # Keep alternating pivots: of a run of same-kind pivots keep the most extreme.
    alt: list[tuple[int, int]] = []
    for i, k in piv:
        if alt and alt[-1][1] == k:
            j = alt[-1][0]
            better = ctx.h[i] > ctx.h[j] if k == 1 else ctx.lo[i] < ctx.lo[j]
            if better:
                alt[-1] = (i, k)
        else:
            alt.append((i, k))
    out: list[ChartPattern] = []
    for size in (7, 6):
        for e in range(size - 1, len(alt)):
            run = alt[e - size + 1 : e + 1]
            s, last = run[0][0], run[-1][0]
            if last - s > p.max_pattern_bars:
                continue
            hx = [float(i) for i, k in run if k == 1]
            lx = [float(i) for i, k in run if k == -1]
            if len(hx) < 2 or len(lx) < 2:
                continue
            hy = [float(ctx.h[int(i)]) for i in hx]
            ly = [float(ctx.lo[int(i)]) for i in lx]
            atr = float(ctx.atr[last])
            hs, hb, hres = _line(hx, hy)
            ls, lb, lres = _line(lx, ly)
            fit_tol = max(p.triangle_fit_atr * atr, p.level_tol_pct * sum(hy) / len(hy))
            if max(hres, lres) > fit_tol:
                continue
            span = last - s
            h_move, l_move = hs * span, ls * span
            flat = max(p.triangle_flat_atr * atr, 0.25 * max(abs(h_move), abs(l_move)))
            w0 = (hs * s + hb) - (ls * s + lb)
            w1 = (hs * last + hb) - (ls * last + lb)
            if not (w1 > 0 and w0 > 0 and w1 < w0 * (2.0 / 3.0)):
                continue
            if abs(h_move) <= flat and l_move > flat:
                kind, direction = "ascending_triangle", 1
            elif h_move < -flat and abs(l_move) <= flat:
                kind, direction = "descending_triangle", -1
            elif h_move < -flat and l_move > flat:
                kind, direction = "symmetrical_triangle", 0
            else:
                continue
            horizon = min(ctx.n, last + span + 1)
            conf = -1
            for t in range(last + 1, horizon):
                top, bot = hs * t + hb, ls * t + lb
                if ctx.c[t] > top and direction >= 0:
                    conf, direction = t, 1
                    break
                if ctx.c[t] < bot and direction <= 0:
                    conf, direction = t, -1
                    break
                if ctx.c[t] > top or ctx.c[t] < bot:
                    break  # broke out the wrong way: the pattern failed
            confirmed = conf != -1
            fit = 1.0 - max(hres, lres) / fit_tol if fit_tol > 0 else 1.0
            strength = _clip01(0.3 * fit + 0.4 * min(size / 7.0, 1.0) + 0.3 * confirmed)
            out.append(
                ChartPattern(
                    kind=kind,
                    direction=direction,
                    start_index=s,
                    end_index=conf if confirmed else last,
                    key_prices={
                        "upper_start": hs * s + hb,
                        "upper_end": hs * last + hb,
                        "lower_start": ls * s + lb,
                        "lower_end": ls * last + lb,
                    },
                    strength=strength,
                    confirmed=confirmed,
                )
            )
    return _dedupe(out)


def _dedupe(patterns: list[ChartPattern]) -> list[ChartPattern]:
    """Of overlapping patterns of the same kind keep the strongest."""
    kept: list[ChartPattern] = []
    for cand in sorted(patterns, key=lambda cp: (-cp.strength, cp.start_index)):
        clash = any(
            k.kind == cand.kind and cand.start_index <= k.end_index and k.start_index <= cand.end_index for k in kept
        )
        if not clash:
            kept.append(cand)
    kept.sort(key=lambda cp: (cp.end_index, cp.kind))
    return kept


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _inputs(open: Any, high: Any, low: Any, close: Any, volume: Any) -> tuple[F64, F64, F64, F64, F64 | None]:
    o, h, lo, c = (
        _vector(x, name) for x, name in zip((open, high, low, close), ("open", "high", "low", "close"), strict=True)
    )
    v = None if volume is None else _vector(volume, "volume")
    n = c.size
    for name, arr in (("open", o), ("high", h), ("low", lo), ("volume", v)):
        if arr is not None and arr.size != n:
            raise ValueError(f"{name} has length {arr.size} but close has length {n}; all inputs must match")
    return o, h, lo, c, v


def detect_chart_patterns(
    open: Any,
    high: Any,
    low: Any,
    close: Any,
    volume: Any = None,
    params: ChartParams | None = None,
    *,
    require_volume: bool = True,
) -> ChartAnalysis:
    """Levels, trend and chart patterns of one bar series (oldest first).

    ``volume`` may be None: breakouts then cannot be volume-confirmed and are only reported
    when ``require_volume`` is False. Raises ValueError for mismatched lengths, non-numeric
    input or a bad parameter (naming it and its value).
    """
    p = params if params is not None else ChartParams()
    if not isinstance(p, ChartParams):
        raise ValueError(f"params must be a ChartParams; got {type(p).__name__}")
    p.validate()
    o, h, lo, c, v = _inputs(open, high, low, close, volume)
    ctx = _Ctx(o, h, lo, c, v, p)
    levels, clusters = find_levels(ctx)
    trend = find_trend(ctx)
    patterns: list[ChartPattern] = []
    if ctx.n > 2:
        patterns += find_breakouts(ctx, clusters, require_volume)
        patterns += find_double_tops(ctx, bottoms=False)
        patterns += find_double_tops(ctx, bottoms=True)
        patterns += find_head_and_shoulders(ctx, inverse=False)
        patterns += find_head_and_shoulders(ctx, inverse=True)
        patterns += find_triangles(ctx)
    patterns.sort(key=lambda cp: (cp.end_index, cp.kind))
    return ChartAnalysis(
        levels=tuple(levels),
        trend=trend,
        patterns=tuple(patterns),
        pivot_highs=tuple(ctx.hi_idx),
        pivot_lows=tuple(ctx.lo_idx),
    )
