"""Option-native: buy premium when implied volatility is cheap against realised volatility.

If the options of the expiry the selector would trade are priced at an ATM IV well below the
volatility the underlying actually realises (1-minute returns over the last session, annualised in
trading time), a long option is cheap for the movement it will see. The direction is the short
trend (EMA fast above/below EMA slow, and rising/falling). The projected move is ``move_sigma``
realised sigmas over the horizon.
"""

from __future__ import annotations

import math

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import MINUTES_PER_YEAR, Snapshot
from aiots.services.signals.models import Direction, Idea, Reason
from aiots.services.signals.strategies.base import clip01

# iv > level x (1 + this) makes the rounded iv / rv exceed iv_rv_max whatever the rounding of level
RATIO_SLACK = 1e-12


class CheapVolatility:
    """Bullish: ATM IV / realised vol <= iv_rv_max, EMA(fast) rising above EMA(slow). Bearish mirrors."""

    name = "cheap_volatility"

    def evaluate(self, snap: Snapshot, cfg: SignalsConfig) -> Idea | None:
        c = cfg.strategies.cheap_volatility
        rv = snap.realized_vol
        if not c.enabled or not snap.ready or not math.isfinite(rv) or rv < c.min_rv:
            return None
        if not math.isfinite(snap.ema_fast_prev):
            return None
        bar = snap.bar
        if snap.ema_fast > snap.ema_slow and snap.ema_fast > snap.ema_fast_prev:
            direction = Direction.BULLISH
        elif snap.ema_fast < snap.ema_slow and snap.ema_fast < snap.ema_fast_prev:
            direction = Direction.BEARISH
        else:
            return None
        if snap.atm_iv_exceeds(c.iv_rv_max * rv * (1.0 + RATIO_SLACK)):
            return None  # the ATM IV is known to be too rich without solving it (modelled chains)
        iv = snap.traded_atm_iv()  # IV solves: only once the cheap conditions hold
        if not math.isfinite(iv):
            return None
        ratio = iv / rv
        if ratio > c.iv_rv_max:
            return None
        sign = 1.0 if direction is Direction.BULLISH else -1.0
        horizon_years = c.horizon_bars * (bar.interval_ns / 60e9) / MINUTES_PER_YEAR
        move = sign * c.move_sigma * bar.close * rv * math.sqrt(horizon_years)
        cheap = Reason(
            "atm iv / realised vol",
            ratio,
            c.iv_rv_max,
            f"ATM IV {iv:.2f} vs realised {rv:.2f} ({ratio:.2f}x): premium is cheap for the movement",
        )
        trend = Reason(
            "ema fast - slow",
            snap.ema_fast - snap.ema_slow,
            0.0,
            f"EMA fast {snap.ema_fast:.2f} {'above' if sign > 0 else 'below'} slow {snap.ema_slow:.2f}",
        )
        evidence = clip01(0.3 + 1.5 * (c.iv_rv_max - ratio))
        return Idea(
            symbol=bar.symbol,
            strategy=self.name,
            direction=direction,
            underlying_price=bar.close,
            projected_move=move,
            horizon_ns=c.horizon_bars * bar.interval_ns,
            evidence=evidence,
            reasons=(cheap, trend),
            atr=snap.atr,
        )
