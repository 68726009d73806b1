"""Momentum breakout through resistance (or breakdown through support) with volume confirmation."""

from __future__ import annotations

import math

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import Snapshot
from aiots.services.signals.models import Direction, Idea, Reason
from aiots.services.signals.strategies.base import atr_idea, clip01


class MomentumBreakout:
    """Close beyond the ``lookback``-bar high/low by ``breakout_atr`` ATRs on ``volume_mult`` x volume."""

    name = "momentum_breakout"

    def evaluate(self, snap: Snapshot, cfg: SignalsConfig) -> Idea | None:
        c = cfg.strategies.momentum_breakout
        if not c.enabled or not snap.ready or not math.isfinite(snap.resistance):
            return None
        bar, atr = snap.bar, snap.atr
        if atr <= 0 or snap.volume_avg <= 0:
            return None
        vol_ratio = bar.volume / snap.volume_avg
        if vol_ratio < c.volume_mult:
            return None
        up_dist = (bar.close - snap.resistance) / atr
        dn_dist = (snap.support - bar.close) / atr
        if up_dist >= c.breakout_atr and snap.rsi < c.rsi_cap:
            direction, level, dist = Direction.BULLISH, snap.resistance, up_dist
            rsi_ok = Reason("rsi", snap.rsi, c.rsi_cap, f"RSI {snap.rsi:.1f} below {c.rsi_cap:.0f}: not exhausted")
            lvl = Reason(
                "close vs resistance",
                bar.close,
                level,
                f"close {bar.close:.2f} broke the {c.lookback}-bar high {level:.2f} by {dist:.2f} ATR",
            )
        elif dn_dist >= c.breakout_atr and snap.rsi > 100.0 - c.rsi_cap:
            direction, level, dist = Direction.BEARISH, snap.support, dn_dist
            rsi_ok = Reason(
                "rsi",
                snap.rsi,
                100.0 - c.rsi_cap,
                f"RSI {snap.rsi:.1f} above {100 - c.rsi_cap:.0f}: not exhausted",
            )
            lvl = Reason(
                "close vs support",
                bar.close,
                level,
                f"close {bar.close:.2f} broke the {c.lookback}-bar low {level:.2f} by {dist:.2f} ATR",
            )
        else:
            return None
        vol = Reason(
            "volume / avg",
            vol_ratio,
            c.volume_mult,
            f"volume {vol_ratio:.1f}x its {c.volume_period}-bar average (needs {c.volume_mult:.1f}x)",
        )
        evidence = clip01(0.4 + 0.2 * min(vol_ratio / c.volume_mult - 1.0, 1.0) + 0.2 * min(dist, 1.0))
        return atr_idea(self.name, bar, direction, c.move_atr, atr, c.horizon_bars, evidence, (lvl, vol, rsi_ok))
