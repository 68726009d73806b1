"""Trend pullback to a rising (falling) EMA while ADX shows a strong trend."""

from __future__ import annotations

import math

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import Snapshot
from aiots.services.signals.models import Direction, Idea, Reason
from aiots.services.signals.strategies.base import atr_idea, clip01


class TrendPullback:
    """Bullish: EMA(fast) rising and above EMA(slow), ADX >= adx_min with +DI > -DI, the bar's low
    came within ``touch_atr`` ATRs of EMA(fast) and the bar closed above it. Bearish mirrors."""

    name = "trend_pullback"

    def evaluate(self, snap: Snapshot, cfg: SignalsConfig) -> Idea | None:
        c = cfg.strategies.trend_pullback
        if not c.enabled or not snap.ready or not math.isfinite(snap.ema_fast_prev):
            return None
        bar, atr, ema = snap.bar, snap.atr, snap.ema_fast
        if atr <= 0 or snap.adx < c.adx_min:
            return None
        rising = ema > snap.ema_fast_prev and ema > snap.ema_slow and snap.plus_di > snap.minus_di
        falling = ema < snap.ema_fast_prev and ema < snap.ema_slow and snap.minus_di > snap.plus_di
        if rising and bar.low <= ema + c.touch_atr * atr and bar.close > ema:
            direction = Direction.BULLISH
            touch = Reason("low vs ema", bar.low, ema, f"pulled back to the rising EMA({c.ema_fast}) {ema:.2f}")
        elif falling and bar.high >= ema - c.touch_atr * atr and bar.close < ema:
            direction = Direction.BEARISH
            touch = Reason("high vs ema", bar.high, ema, f"rallied to the falling EMA({c.ema_fast}) {ema:.2f}")
        else:
            return None
        adx = Reason("adx", snap.adx, c.adx_min, f"ADX {snap.adx:.1f} >= {c.adx_min:.0f}: trending")
        di = Reason(
            "+di - -di",
            snap.plus_di - snap.minus_di,
            0.0,
            f"+DI {snap.plus_di:.1f} vs -DI {snap.minus_di:.1f}",
        )
        evidence = clip01(0.35 + 0.5 * min((snap.adx - c.adx_min) / 25.0, 1.0))
        return atr_idea(self.name, bar, direction, c.move_atr, atr, c.horizon_bars, evidence, (touch, adx, di))
