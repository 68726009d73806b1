"""Mean reversion at a Bollinger band with an RSI extreme and a reversal candle."""

from __future__ import annotations

import math

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import Snapshot
from aiots.services.signals.models import Direction, Idea, Reason
from aiots.services.signals.strategies.base import clip01


class MeanReversion:
    """Bullish: the low of this or the prior bar tagged the lower band while RSI (before this bar)
    was <= rsi_low, and this bar reverses up (closes above its open and the prior close).
    Bearish mirrors it at the upper band. Projected move: back to the middle band, capped in ATRs."""

    name = "mean_reversion"

    def evaluate(self, snap: Snapshot, cfg: SignalsConfig) -> Idea | None:
        c = cfg.strategies.mean_reversion
        if not c.enabled or not snap.ready or snap.prev_bar is None:
            return None
        bar, prev, atr = snap.bar, snap.prev_bar, snap.atr
        if atr <= 0:
            return None
        oversold = math.isfinite(snap.rsi_prev) and snap.rsi_prev <= c.rsi_low
        overbought = math.isfinite(snap.rsi_prev) and snap.rsi_prev >= c.rsi_high
        if not (oversold or overbought):  # neither branch below can fire (most bars: checked first)
            return None
        low_touch = min(prev.low, bar.low) <= snap.bb_lower
        high_touch = max(prev.high, bar.high) >= snap.bb_upper
        if low_touch and oversold and bar.close > bar.open and bar.close > prev.close:
            direction = Direction.BULLISH
            band = Reason("bb lower", min(prev.low, bar.low), snap.bb_lower, "price tagged the lower band")
            rsi = Reason("rsi", snap.rsi_prev, c.rsi_low, f"RSI {snap.rsi_prev:.1f} <= {c.rsi_low:.0f}: oversold")
        elif high_touch and overbought and bar.close < bar.open and bar.close < prev.close:
            direction = Direction.BEARISH
            band = Reason("bb upper", max(prev.high, bar.high), snap.bb_upper, "price tagged the upper band")
            rsi = Reason("rsi", snap.rsi_prev, c.rsi_high, f"RSI {snap.rsi_prev:.1f} >= {c.rsi_high:.0f}: overbought")
        else:
            return None
        target = snap.bb_middle - bar.close
        candle = Reason(
            "reversal candle",
            bar.close - prev.close,
            0.0,
            "bar closed back " + ("up" if direction is Direction.BULLISH else "down") + " through the prior close",
        )
        move = max(-c.move_atr_cap * atr, min(c.move_atr_cap * atr, target))
        if move == 0.0 or (move > 0) != (direction is Direction.BULLISH):
            return None
        extremity = abs(snap.rsi_prev - 50.0) / 50.0
        evidence = clip01(0.35 + 0.4 * extremity + 0.1 * min(abs(move) / atr, 2.0))
        return Idea(
            symbol=bar.symbol,
            strategy=self.name,
            direction=direction,
            underlying_price=bar.close,
            projected_move=move,
            horizon_ns=c.horizon_bars * bar.interval_ns,
            evidence=evidence,
            reasons=(band, rsi, candle),
            atr=atr,
        )
