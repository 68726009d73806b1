"""Statistics of backtest trades: counts, hit rate with its Wilson interval, P&L after fees,
expectancy, profit factor, drawdown, time in trade, exits by reason, calibration and the
comparison with the null model (bootstrap interval of the difference in expectancy).

A *hit* is a TARGET exit: the event the signal's confidence is about. P&L is from fills
(ask in, bid out) after $0.65 per contract per leg, in % of the premium paid plus the entry fee.
Trades priced from real quotes and from modelled premiums are never pooled: callers group by
``priced_from`` first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from aiots.core.conventions import NS_PER_MIN
from aiots.services.backtest.runner import Trade

EXIT_REASONS = ("TARGET", "STOP", "HORIZON", "CLOSE", "EXPIRY")
CONFIDENCE_LEVEL = 0.95


def _f(x: float) -> float | None:
    """JSON-safe float (NaN/inf -> None), rounded to 6 decimals."""
    return round(float(x), 6) if math.isfinite(x) else None


def wilson(hits: int, n: int, level: float = CONFIDENCE_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion; (NaN, NaN) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    p = hits / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def max_drawdown(pnl_in_exit_order: Sequence[float]) -> float:
    """Largest peak-to-trough fall (>= 0) of the cumulative P&L, starting from 0."""
    if not pnl_in_exit_order:
        return 0.0
    eq = np.concatenate([[0.0], np.cumsum(np.asarray(pnl_in_exit_order, dtype=np.float64))])
    return float(np.max(np.maximum.accumulate(eq) - eq))


def calibration(conf: Sequence[float], hit: Sequence[bool], bins: int = 10) -> dict[str, Any]:
    """Reliability table on equal-width confidence bins, the Brier score and the ECE."""
    p = np.asarray(conf, dtype=np.float64)
    y = np.asarray(hit, dtype=np.float64)
    n = p.size
    rows: list[dict[str, Any]] = []
    ece = 0.0
    if n:
        idx = np.minimum((p * bins).astype(int), bins - 1)
        for b in range(bins):
            m = idx == b
            k = int(m.sum())
            if k == 0:
                continue
            pred, real = float(p[m].mean()), float(y[m].mean())
            ece += k / n * abs(pred - real)
            lo, hi = wilson(int(y[m].sum()), k)
            rows.append(
                {
                    "lo": b / bins,
                    "hi": (b + 1) / bins,
                    "n": k,
                    "predicted": _f(pred),
                    "realised": _f(real),
                    "realised_ci": [_f(lo), _f(hi)],
                }
            )
    brier = float(np.mean((p - y) ** 2)) if n else math.nan
    base = float(y.mean()) if n else math.nan
    return {
        "n": n,
        "brier": _f(brier),
        "brier_base_rate": _f(float(np.mean((base - y) ** 2)) if n else math.nan),
        "ece": _f(ece if n else math.nan),
        "bins": rows,
    }


def summarize(trades: Sequence[Trade]) -> dict[str, Any]:
    """All statistics of one group of trades (one ``priced_from``)."""
    filled = [t for t in trades if t.entry is not None and t.closed]
    filled.sort(key=lambda t: (t.exit_ns, t.signal.id))
    n = len(filled)
    hits = sum(t.hit for t in filled)
    pct = np.array([t.pnl_pct for t in filled], dtype=np.float64)
    usd = np.array([t.pnl_usd for t in filled], dtype=np.float64)
    gains, losses = usd[usd > 0].sum(), -usd[usd < 0].sum()
    lo, hi = wilson(hits, n)
    tit = np.array([(t.exit_ns - t.signal.created_ns) / NS_PER_MIN for t in filled], dtype=np.float64)
    reasons = Counter(str(t.exit_reason) for t in filled)
    refusals = Counter(t.refusal for t in trades if t.entry is None)
    return {
        "signals": len(trades),
        "fills": sum(t.entry is not None for t in trades),
        "n": n,
        "hits": hits,
        "hit_rate": _f(hits / n if n else math.nan),
        "hit_rate_ci": [_f(lo), _f(hi)],
        "win_rate": _f(float((pct > 0).mean()) if n else math.nan),
        "mean_pnl_pct": _f(float(pct.mean()) if n else math.nan),
        "median_pnl_pct": _f(float(np.median(pct)) if n else math.nan),
        "expectancy_pct": _f(float(pct.mean()) if n else math.nan),
        "expectancy_usd": _f(float(usd.mean()) if n else math.nan),
        "total_pnl_usd": _f(float(usd.sum())),
        "profit_factor": _f(gains / losses if losses > 0 else (math.inf if gains > 0 else math.nan)),
        "max_drawdown_usd": _f(max_drawdown(usd.tolist())),
        "mean_minutes_in_trade": _f(float(tit.mean()) if n else math.nan),
        "median_minutes_in_trade": _f(float(np.median(tit)) if n else math.nan),
        "exits_by_reason": {r: reasons.get(r, 0) for r in EXIT_REASONS},
        "refusals": dict(sorted(refusals.items())),
        "mean_confidence": _f(float(np.mean([t.signal.confidence for t in filled])) if n else math.nan),
    }


def bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(a) - mean(b), resampling each group independently."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan
    res = sps.bootstrap(
        (x, y),
        lambda u, v, axis=-1: np.mean(u, axis=axis) - np.mean(v, axis=axis),
        n_resamples=n_boot,
        method="percentile",
        confidence_level=CONFIDENCE_LEVEL,
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def null_comparison(strategy: Sequence[Trade], null: Sequence[Trade], seed: int) -> dict[str, Any]:
    """The null model's expectancy and the strategy's difference from it with a bootstrap interval."""
    s = [t.pnl_pct for t in strategy if t.entry is not None and t.closed]
    z = [t.pnl_pct for t in null if t.entry is not None and t.closed]
    ns = summarize(null)
    e_s = float(np.mean(s)) if s else math.nan
    e_z = float(np.mean(z)) if z else math.nan
    lo, hi = bootstrap_difference(s, z, seed)
    return {
        "signals": ns["signals"],
        "n": len(z),
        "expectancy_pct": ns["expectancy_pct"],
        "hit_rate": ns["hit_rate"],
        "hit_rate_ci": ns["hit_rate_ci"],
        "exits_by_reason": ns["exits_by_reason"],
        "strategy_expectancy_pct": _f(e_s),
        "difference_pct": _f(e_s - e_z),
        "difference_ci": [_f(lo), _f(hi)],
    }
