"""Signal statistics: hit rate with its 95 % Wilson interval, expectancy after costs, calibration.

Inputs are the closed signals' outcomes; a hit is TARGET_HIT. P&L is % of the premium paid, from
the exit prices and after fees (``Signal.pnl_pct``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aiots.core.stats import Calibration, calibration, wilson_interval
from aiots.services.signals.models import Status


@dataclass(frozen=True)
class Outcome:
    """One signal as the statistics see it (open signals count in ``total`` and ``open`` only)."""

    strategy: str
    symbol: str
    status: Status
    pnl_pct: float
    confidence: float


@dataclass(frozen=True)
class StatsRow:
    strategy: str
    symbol: str
    total: int
    open: int
    target_hit: int
    stopped: int
    expired: int
    hit_rate: float
    avg_pnl_pct: float
    hit_rate_ci_low: float
    hit_rate_ci_high: float
    expectancy_pct: float
    mean_confidence: float


def return_ratio(pnl_pct: float) -> float:
    """Exit proceeds / premium paid after fees (1.0 breakeven, 0.95 a 5 % loss, 0 a total loss): the
    value the ``aiots_signal_return_ratio`` histogram records, since histograms refuse negatives."""
    return max(0.0, 1.0 + pnl_pct / 100.0)


def signal_stats(outcomes: Iterable[Outcome]) -> tuple[list[StatsRow], Calibration]:
    """Rows per (strategy, symbol), sorted, and the calibration over every closed signal."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.strategy, o.symbol), []).append(o)
    rows: list[StatsRow] = []
    probs: list[float] = []
    hits: list[float] = []
    for (strategy, symbol), items in sorted(groups.items()):
        closed = [o for o in items if o.status.closed and o.status is not Status.CANCELLED]
        n_hit = sum(o.status is Status.TARGET_HIT for o in closed)
        pnl = [o.pnl_pct for o in closed]
        lo, hi = wilson_interval(n_hit, len(closed))
        mean_pnl = float(np.mean(pnl)) if pnl else 0.0
        rows.append(
            StatsRow(
                strategy=strategy,
                symbol=symbol,
                total=len(items),
                open=sum(o.status is Status.OPEN for o in items),
                target_hit=n_hit,
                stopped=sum(o.status is Status.STOPPED for o in items),
                expired=sum(o.status is Status.EXPIRED for o in items),
                hit_rate=n_hit / len(closed) if closed else 0.0,
                avg_pnl_pct=mean_pnl,
                hit_rate_ci_low=lo,
                hit_rate_ci_high=hi,
                expectancy_pct=mean_pnl if closed else math.nan,
                mean_confidence=float(np.mean([o.confidence for o in closed])) if closed else math.nan,
            )
        )
        probs.extend(o.confidence for o in closed)
        hits.extend(1.0 if o.status is Status.TARGET_HIT else 0.0 for o in closed)
    return rows, calibration(probs, hits)
