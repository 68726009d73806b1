"""The signal engine: closed bar -> features -> strategies -> contract -> Signal.

Pure and deterministic: :meth:`SignalEngine.on_bar` depends only on the bars, quotes and config
it was given (ids are derived from the inputs), so live mode and replay produce the same signals.
I/O (bus, storage, fan-out) lives in :mod:`app`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable

from aiots.core.conventions import NS_PER_MIN, calendar, ny_date, ny_midnight_ns
from aiots.core.execution import ExecutionModel
from aiots.services.signals.atm_iv import book_atm_iv, book_atm_iv_exceeds
from aiots.services.signals.calibration import Calibrator, load_calibrator
from aiots.services.signals.chainview import ChainView, ContractColumns, QuoteListView
from aiots.services.signals.config import ConfigSource, SignalsConfig
from aiots.services.signals.features import Snapshot, SymbolFeatures
from aiots.services.signals.ids import signal_id
from aiots.services.signals.lifecycle import LifecycleTracker
from aiots.services.signals.models import Bar, Idea, OptionQuote, Signal, Status, StatusChange
from aiots.services.signals.selection import ContractSelector
from aiots.services.signals.strategies import Strategy, all_strategies

#: the gate behind a skip reason (``ContractSelector.last_skip``), as a bounded metric label
CANDIDATE_OUTCOMES: tuple[tuple[str, str], ...] = (
    ("IV rank", "iv rank"),
    ("event risk", "event risk"),
    ("no fresh", "no fresh liquid contract"),
    ("no trading time", "no trading time"),
    ("no contract near the delta band", "delta band"),
    ("no implied volatility", "no iv"),
    ("no contract pays its costs", "ev not positive"),
)


def candidate_outcome(reason: str) -> str:
    """``aiots_signal_candidates_total``'s ``outcome`` for a skip reason (numbers stripped)."""
    return next((label for prefix, label in CANDIDATE_OUTCOMES if reason.startswith(prefix)), "other")


class ChainBook:
    """Latest quote per contract, per underlying (fed by option quote events).

    A view is built on read and dropped when the underlying's book changes; the contract columns
    (OCC order, expiry, strike, right, multiplier, the expiry index) are kept until a contract is
    added or a quote names its contract differently, so a re-quoted chain's view builds only the
    quote columns."""

    def __init__(self) -> None:
        self._chains: dict[str, dict[str, OptionQuote]] = {}
        self._views: dict[str, ChainView] = {}
        #: per underlying: (the OCC symbols in order, their contract columns)
        self._contracts: dict[str, tuple[list[str], ContractColumns]] = {}

    def update(self, q: OptionQuote) -> None:
        book = self._chains.setdefault(q.underlying, {})
        old = book.get(q.occ_symbol)
        if old is None or q.ts_ns >= old.ts_ns:
            book[q.occ_symbol] = q
            self._views.pop(q.underlying, None)
            if (
                old is None
                or old.expiry_ns != q.expiry_ns
                or old.strike != q.strike
                or old.is_call != q.is_call
                or old.multiplier != q.multiplier
            ):
                self._contracts.pop(q.underlying, None)

    def chain(self, underlying: str) -> list[OptionQuote]:
        return sorted(self._chains.get(underlying, {}).values(), key=lambda q: q.occ_symbol)

    def view(self, underlying: str) -> ChainView:
        """The chain in columns (what selection reads), in :meth:`chain`'s order."""
        v = self._views.get(underlying)
        if v is None:
            known = self._contracts.get(underlying)
            if known is None:
                quotes = self.chain(underlying)
                known = self._contracts[underlying] = ([q.occ_symbol for q in quotes], ContractColumns.of(quotes))
            else:
                book = self._chains[underlying]
                quotes = [book[k] for k in known[0]]
            v = self._views[underlying] = QuoteListView(quotes, known[1])
        return v

    def first_atm_iv(
        self, symbol: str, spot: float, now_ns: int, r: float, q: float, lo: float, hi: float, max_age_ns: int
    ) -> float | None:
        """None: real quotes have no shortcut past their view (:func:`~.atm_iv.book_atm_iv`)."""
        return None

    def atm_iv_exceeds(
        self,
        symbol: str,
        spot: float,
        now_ns: int,
        r: float,
        q: float,
        lo: float,
        hi: float,
        max_age_ns: int,
        level: float,
    ) -> bool:
        """False: real quotes prove nothing about their ATM IV before it is read."""
        return False


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
        execution: ExecutionModel | None = None,
        calibrator: Calibrator | None = None,
    ) -> None:
        self._source = config if isinstance(config, ConfigSource) else None
        self._static = config if isinstance(config, SignalsConfig) else None
        self.execution = execution or ExecutionModel()
        self.chains = chains or ChainBook()
        self.tracker = LifecycleTracker(self.execution)  # exits on the same execution model
        cal = calibrator if calibrator is not None else load_calibrator(self.config.confidence.calibration_file)
        self.selector = ContractSelector(self.execution, cal)
        #: why ideas found no contract, counted by reason (event risk, costs, liquidity, hours)
        self.skipped: dict[str, int] = {}
        #: called once per idea with (strategy, outcome): "signal" or the gate that refused it
        self.on_candidate: Callable[[str, str], None] | None = None
        self.strategies = strategies or all_strategies()
        self._iv_rank = iv_rank or (lambda _s: math.nan)
        self._q = dividend_yield or (lambda _s: 0.0)
        self._features: dict[str, SymbolFeatures] = {}
        self._bar_count: dict[str, int] = {}
        self._last_fired: dict[tuple[str, str], int] = {}
        self.evaluations = 0
        #: :meth:`may_open`'s bounds for one New York day and config: (day start ns, next day's
        #: start ns, first ns open, last ns open, the config); ``first > last`` when it never opens
        self._open_window: tuple[int, int, int, int, SignalsConfig | None] = (0, 0, 1, 0, None)

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
        snap = self.features(bar.symbol).update(bar)
        if snap is None:
            return [], []
        return self.decide(snap)

    def features(self, symbol: str) -> SymbolFeatures:
        """The feature state :meth:`evaluate` and :meth:`warm` feed for ``symbol`` (made on first use).

        A replay may drive it itself (:meth:`SymbolFeatures.stream` over the symbol's bars) and hand
        each snapshot to :meth:`decide_lazily`: that is :meth:`evaluate`, the features in columns."""
        feats = self._features.get(symbol)
        if feats is None:
            feats = self._features[symbol] = SymbolFeatures(self.config)
        return feats

    def decide(self, snap: Snapshot) -> tuple[list[Idea], list[Signal]]:
        """:meth:`evaluate` on features computed elsewhere (live: analytics publishes them on
        ``features:1m``; in a backtest :meth:`evaluate` computes them in-process)."""
        return self.decide_lazily(snap.bar, itertools.repeat(snap).__next__)

    def decide_lazily(self, bar: Bar, snapshot: Callable[[], Snapshot]) -> tuple[list[Idea], list[Signal]]:
        """:meth:`decide` on ``bar``'s snapshot, made by ``snapshot()`` only once a strategy will
        read it (outside the hours ideas may open, nothing does: a replay skips half the snapshots)."""
        sym = bar.symbol
        cfg = self.config
        n = self._bar_count[sym] = self._bar_count.get(sym, 0) + 1
        now = bar.ts_ns + bar.interval_ns  # bar.close_ts_ns
        tracker = self.tracker
        updates = tracker.on_time(now, sym, bar.close) if now >= tracker.next_decision_ns else []
        w = self._open_window
        if not (w[0] <= now < w[1] and w[4] is cfg):
            w = self._open_window = self._open_bounds(now, cfg)
        if not w[2] <= now <= w[3]:  # may_open(now, cfg)
            return [], updates
        snap = snapshot()
        if cfg.strategies.cheap_volatility.enabled and math.isfinite(snap.realized_vol):
            chains, q, age = self.chains, self._q(sym), self.execution.max_quote_age_ns

            def source() -> float:
                return book_atm_iv(chains, sym, bar.close, now, cfg, q, age)

            def exceeds(level: float) -> bool:
                return book_atm_iv_exceeds(chains, sym, bar.close, now, cfg, q, age, level)

            snap = snap.with_iv_source(source, exceeds)
        ideas: list[Idea] = []
        fired = self._last_fired
        cooldown = cfg.cooldown_bars
        for strat in self.strategies:
            self.evaluations += 1
            if fired:
                last = fired.get((sym, strat.name))
                if last is not None and n - last <= cooldown:
                    continue
            idea = strat.evaluate(snap, cfg)
            if idea is not None:
                ideas.append(idea)
        return ideas, updates

    @staticmethod
    def _open_bounds(now_ns: int, cfg: SignalsConfig) -> tuple[int, int, int, int, SignalsConfig]:
        """:meth:`may_open` for the whole New York day of ``now_ns`` (the calendar's
        ``session_of`` answers per New York day): ``may_open(t, cfg)`` is ``first <= t <= last``
        for every ``t`` of that day. Integer ns, so ``t < close`` is ``t <= close - 1``."""
        day = ny_date(now_ns)
        lo, hi = ny_midnight_ns(day), ny_midnight_ns(day + dt.timedelta(days=1))
        s = calendar().session_of(now_ns)
        if s is None:
            return lo, hi, 1, 0, cfg
        mh = cfg.market_hours
        first = max(s.open_ns, s.open_ns + int(mh.open_delay_minutes * NS_PER_MIN))
        last = min(s.close_ns - 1, s.close_ns - int((mh.close_buffer_minutes + mh.min_horizon_minutes) * NS_PER_MIN))
        return lo, hi, first, last, cfg

    @staticmethod
    def may_open(now_ns: int, cfg: SignalsConfig) -> bool:
        """Regular hours, past the opening delay, with at least the minimum horizon before the close."""
        s = calendar().session_of(now_ns)
        if s is None or not (s.open_ns <= now_ns < s.close_ns):
            return False
        mh = cfg.market_hours
        if now_ns < s.open_ns + int(mh.open_delay_minutes * NS_PER_MIN):
            return False
        last = s.close_ns - int((mh.close_buffer_minutes + mh.min_horizon_minutes) * NS_PER_MIN)
        return now_ns <= last

    @staticmethod
    def horizon_end(now_ns: int, horizon_ns: int, cfg: SignalsConfig) -> int:
        """``now + horizon`` clipped to ``close_buffer_minutes`` before the session's close (early closes too)."""
        s = calendar().session_of(now_ns)
        end = now_ns + horizon_ns
        if s is None:
            return end
        return min(end, s.close_ns - int(cfg.market_hours.close_buffer_minutes * NS_PER_MIN))

    def select(self, bar: Bar, ideas: list[Idea]) -> list[Signal]:
        """The costly half of :meth:`on_bar`: a contract for each idea (IV solves)."""
        cfg = self.config
        now = bar.close_ts_ns
        n = self._bar_count.get(bar.symbol, 0)
        new: list[Signal] = []
        for idea in ideas:
            end = self.horizon_end(now, idea.horizon_ns, cfg)
            if end - now < int(cfg.market_hours.min_horizon_minutes * NS_PER_MIN):
                self.skipped["horizon past the close"] = self.skipped.get("horizon past the close", 0) + 1
                self._count(idea.strategy, "horizon past the close")
                continue
            sel = self.selector.select(
                idea,
                self.chains.view(bar.symbol),
                now,
                cfg,
                dividend_yield=self._q(bar.symbol),
                iv_rank=self._iv_rank(bar.symbol),
                horizon_end_ns=end,
            )
            if sel is None:
                why = self.selector.last_skip.split(":")[0] or "no contract"
                self.skipped[why] = self.skipped.get(why, 0) + 1
                self._count(idea.strategy, candidate_outcome(why))
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
                horizon_ns=end,
                confidence=sel.confidence,
                expected_return_pct=sel.expected_return_pct,
                reward_risk=sel.reward_risk,
                greeks=sel.greeks,
                iv=sel.iv,
                iv_rank=self._iv_rank(bar.symbol),
                reasons=idea.reasons,
                projected_move=idea.projected_move,
                history=[StatusChange(Status.OPEN, now, sel.entry, f"opened by {idea.strategy} (bought at the ask)")],
                suggested_contracts=sel.suggested_contracts,
                fee_per_contract=self.execution.fee_per_contract,
                p_model=sel.p_model,
                evidence=sel.evidence,
                risk_per_contract=sel.risk_per_contract,
                exercise_style=sel.style,
            )
            self.tracker.add(sig)
            new.append(sig)
            self._count(idea.strategy, "signal")
        return new

    def _count(self, strategy: str, outcome: str) -> None:
        if self.on_candidate is not None:
            self.on_candidate(strategy, outcome)

    def last_bar_ns(self, symbol: str) -> int:
        """Open time (ns) of the newest bar the features of ``symbol`` have seen; -1 when none."""
        feats = self._features.get(symbol)
        return feats.last_ts_ns if feats is not None else -1

    def reset(self, symbol: str) -> None:
        """Forget ``symbol``'s features, bar count and cooldowns (before re-warming from an earlier point)."""
        self._features.pop(symbol, None)
        self._bar_count.pop(symbol, None)
        for key in [k for k in self._last_fired if k[0] == symbol]:
            del self._last_fired[key]

    def warm(self, bar: Bar) -> None:
        """Feed a historical bar to the features only (no strategy runs, nothing is emitted)."""
        self.features(bar.symbol).update(bar)

    def on_option_quote(self, q: OptionQuote) -> list[Signal]:
        """Feed one option quote: updates the chain and returns signals whose status changed."""
        self.chains.update(q)
        return self.tracker.on_quote(q)

    def track(self, sig: Signal) -> None:
        """Resume tracking an open signal (e.g. loaded from storage at start-up)."""
        self.tracker.add(sig)
