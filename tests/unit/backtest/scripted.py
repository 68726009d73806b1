"""A stand-in with the signal engine's interface whose decisions are scripted (for replay tests)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from aiots.core.conventions import NS_PER_MIN
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import Snapshot, SymbolFeatures
from aiots.services.signals.engine import ChainBook
from aiots.services.signals.models import Bar, Direction, GreeksTU, Idea, OptionQuote, Signal


@dataclass(frozen=True)
class Script:
    """Open ``occ`` at ``at_ns`` (a bar close) with these levels (dollars per share) and horizon."""

    id: str
    at_ns: int
    occ: str
    target: float
    stop: float
    horizon_ns: int


class ScriptedEngine:
    """features/decide/evaluate/select/warm/on_option_quote like SignalEngine, firing only the
    scripted signals (the features are computed and ignored)."""

    def __init__(self, book: ChainBook, scripts: list[Script]) -> None:
        self.chains = book
        self.strategies: list[object] = []
        self.skipped: dict[str, int] = {}
        self.scripts = {s.at_ns: s for s in scripts}

    def warm(self, bar: Bar) -> None:
        pass

    def features(self, symbol: str) -> SymbolFeatures:
        return SymbolFeatures(FeatureParams())

    def decide(self, snap: Snapshot) -> tuple[list[Idea], list[Signal]]:
        return self.evaluate(snap.bar)

    def decide_lazily(self, bar: Bar, snapshot: Callable[[], Snapshot]) -> tuple[list[Idea], list[Signal]]:
        return self.evaluate(bar)

    def on_option_quote(self, q: OptionQuote) -> list[Signal]:
        self.chains.update(q)
        return []

    def evaluate(self, bar: Bar) -> tuple[list[Idea], list[Signal]]:
        if bar.close_ts_ns not in self.scripts:
            return [], []
        return [Idea(bar.symbol, "scripted", Direction.BULLISH, bar.close, 1.0, 60 * NS_PER_MIN, 0.5, ())], []

    def select(self, bar: Bar, ideas: list[Idea]) -> list[Signal]:
        s = self.scripts[bar.close_ts_ns]
        q = next((c for c in self.chains.chain(bar.symbol) if c.occ_symbol == s.occ), None)
        if q is None:
            return []
        return [
            Signal(
                id=s.id,
                created_ns=bar.close_ts_ns,
                symbol=bar.symbol,
                underlying_price=bar.close,
                direction=Direction.BULLISH,
                strategy="scripted",
                contract=q,
                entry_price=q.ask,
                target_price=s.target,
                stop_price=s.stop,
                horizon_ns=s.horizon_ns,
                confidence=0.5,
                expected_return_pct=5.0,
                reward_risk=1.0,
                greeks=GreeksTU(0.5, 0, 0, 0, 0),
                iv=0.3,
                iv_rank=math.nan,
                reasons=(),
                projected_move=1.0,
            )
        ]
