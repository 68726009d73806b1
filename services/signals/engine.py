"""The signal engine: closed bar -> features -> strategies -> contract -> Signal.

Pure and deterministic: :meth:`SignalEngine.on_bar` depends only on the bars, quotes and config
it was given (ids are derived from the inputs), so live mode and replay produce the same signals.
I/O (bus, storage, fan-out) lives in :mod:`app`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiots.services.signals.config import ConfigSource, SignalsConfig
from aiots.services.signals.features import SymbolFeatures
from aiots.services.signals.ids import signal_id
from aiots.services.signals.lifecycle import LifecycleTracker
from aiots.services.signals.models import Bar, Idea, OptionQuote, Signal, Status, StatusChange
from aiots.services.signals.selection import ContractSelector
from aiots.services.signals.strategies import Strategy, all_strategies


class ChainBook:
    """Latest quote per contract, per underlying (fed by option quote events)."""

    def __init__(self) -> None:
        self._chains: dict[str, dict[str, OptionQuote]] = {}

    def update(self, q: OptionQuote) -> None:
        book = self._chains.setdefault(q.underlying, {})
        old = book.get(q.occ_symbol)
        if old is None or q.ts_ns >= old.ts_ns:
            book[q.occ_symbol] = q

    def chain(self, underlying: str) -> list[OptionQuote]:
        return sorted(self._chains.get(underlying, {}).values(), key=lambda q: q.occ_symbol)


class SignalEngine:
    """Evaluates every enabled strategy on each closed bar of each symbol."""

    def __init__(
        self,
        config: ConfigSource | SignalsConfig,
        *,
        chains: ChainBook | None = None,
        iv_rank: Callable[[str], float] | None = None,
        dividend_yield: Callable[[str], float] | None = None,
        strategies: list[Strategy] | None = None,
    ) -> None:
        self._source = config if isinstance(config, ConfigSource) else None
        self._static = config if isinstance(config, SignalsConfig) else None
        self.chains = chains or ChainBook()
        self.tracker = LifecycleTracker()
        self.selector = ContractSelector()
        self.strategies = strategies or all_strategies()
        self._iv_rank = iv_rank or (lambda _s: math.nan)
        self._q = dividend_yield or (lambda _s: 0.0)
        self._features: dict[str, SymbolFeatures] = {}
        self._bar_count: dict[str, int] = {}
        self._last_fired: dict[tuple[str, str], int] = {}
        self.evaluations = 0

    @property
    def config(self) -> SignalsConfig:
        if self._source is not None:
            return self._source.current()
        assert self._static is not None
        return self._static

    @property
    def strategy_names(self) -> list[str]:
        return [s.name for s in self.strategies]

    def on_bar(self, bar: Bar) -> tuple[list[Signal], list[Signal]]:
        """Feed one closed bar. Returns (new signals, signals whose status changed)."""
        ideas, updates = self.evaluate(bar)
        return (self.select(bar, ideas) if ideas else []), updates

    def evaluate(self, bar: Bar) -> tuple[list[Idea], list[Signal]]:
        """The cheap half of :meth:`on_bar` (tens of microseconds): features, expiries, strategies.

        Returns the ideas that fired (outside their cooldown) and the expired signals."""
        cfg = self.config
        feats = self._features.get(bar.symbol)
        if feats is None:
            feats = self._features[bar.symbol] = SymbolFeatures(cfg)
        snap = feats.update(bar)
        if snap is None:
            return [], []
        n = self._bar_count[bar.symbol] = self._bar_count.get(bar.symbol, 0) + 1
        updates = self.tracker.on_time(bar.close_ts_ns, bar.symbol)
        ideas: list[Idea] = []
        for strat in self.strategies:
            self.evaluations += 1
            last = self._last_fired.get((bar.symbol, strat.name))
            if last is not None and n - last <= cfg.cooldown_bars:
                continue
            idea = strat.evaluate(snap, cfg)
            if idea is not None:
                ideas.append(idea)
        return ideas, updates

    def select(self, bar: Bar, ideas: list[Idea]) -> list[Signal]:
        """The costly half of :meth:`on_bar`: a contract for each idea (American IV solves)."""
        cfg = self.config
        now = bar.close_ts_ns
        n = self._bar_count.get(bar.symbol, 0)
        new: list[Signal] = []
        for idea in ideas:
            sel = self.selector.select(
                idea,
                self.chains.chain(bar.symbol),
                now,
                cfg,
                dividend_yield=self._q(bar.symbol),
                iv_rank=self._iv_rank(bar.symbol),
            )
            if sel is None:
                continue
            self._last_fired[(bar.symbol, idea.strategy)] = n
            sig = Signal(
                id=signal_id(now, bar.symbol, idea.strategy),
                created_ns=now,
                symbol=bar.symbol,
                underlying_price=bar.close,
                direction=idea.direction,
                strategy=idea.strategy,
                contract=sel.quote,
                entry_price=sel.entry,
                target_price=sel.target,
                stop_price=sel.stop,
                horizon_ns=now + idea.horizon_ns,
                confidence=sel.confidence,
                expected_return_pct=sel.expected_return_pct,
                reward_risk=sel.reward_risk,
                greeks=sel.greeks,
                iv=sel.iv,
                iv_rank=self._iv_rank(bar.symbol),
                reasons=idea.reasons,
                projected_move=idea.projected_move,
                history=[StatusChange(Status.OPEN, now, sel.entry, f"opened by {idea.strategy}")],
            )
            self.tracker.add(sig)
            new.append(sig)
        return new

    def warm(self, bar: Bar) -> None:
        """Feed a historical bar to the features only (no strategy runs, nothing is emitted)."""
        feats = self._features.get(bar.symbol)
        if feats is None:
            feats = self._features[bar.symbol] = SymbolFeatures(self.config)
        feats.update(bar)

    def on_option_quote(self, q: OptionQuote) -> list[Signal]:
        """Feed one option quote: updates the chain and returns signals whose status changed."""
        self.chains.update(q)
        return self.tracker.on_quote(q)

    def track(self, sig: Signal) -> None:
        """Resume tracking an open signal (e.g. loaded from storage at start-up)."""
        self.tracker.add(sig)
