"""The strategy interface and the registry of built-in strategies."""

from __future__ import annotations

import math
from typing import Protocol

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import Snapshot
from aiots.services.signals.models import Bar, Direction, Idea, Reason


class Strategy(Protocol):
    """Evaluated on each closed bar; pure and deterministic for the same snapshot and config."""

    name: str

    def evaluate(self, snap: Snapshot, cfg: SignalsConfig) -> Idea | None: ...


def clip01(x: float) -> float:
    """Clamp to [0, 1] (NaN -> 0)."""
    if not math.isfinite(x):
        return 0.0
    return min(1.0, max(0.0, x))


def atr_idea(
    name: str,
    bar: Bar,
    direction: Direction,
    move_atr: float,
    atr: float,
    horizon_bars: int,
    evidence: float,
    reasons: tuple[Reason, ...],
) -> Idea:
    """An idea projecting ``move_atr`` ATRs in ``direction`` over ``horizon_bars`` bars of ``bar``'s width."""
    sign = 1.0 if direction is Direction.BULLISH else -1.0
    return Idea(
        symbol=bar.symbol,
        strategy=name,
        direction=direction,
        underlying_price=bar.close,
        projected_move=sign * move_atr * atr,
        horizon_ns=horizon_bars * bar.interval_ns,
        evidence=evidence,
        reasons=reasons,
        atr=atr,
    )


def all_strategies() -> list[Strategy]:
    from aiots.services.signals.strategies.cheap_volatility import CheapVolatility
    from aiots.services.signals.strategies.mean_reversion import MeanReversion
    from aiots.services.signals.strategies.momentum_breakout import MomentumBreakout
    from aiots.services.signals.strategies.trend_pullback import TrendPullback

    return [MomentumBreakout(), MeanReversion(), TrendPullback(), CheapVolatility()]
