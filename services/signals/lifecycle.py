"""Open signals watched against live option quotes and time, and the deadline exit rule the
backtest shares.

Exit rules (premiums per share), all on the price a long holder can sell at, the **bid**: the bid
at or above the target -> TARGET_HIT at the bid; the bid at or below the stop -> STOPPED at the
bid. The entry is the ask and the stop sits at least two spreads below it, so the spread alone
does not stop an idea out.

The horizon (which the engine ends before the session's close) is a **deadline**, decided by the
execution model (:func:`exit_at_deadline`, :func:`exit_past_deadline`; the backtest applies the
same two functions to its HORIZON, CLOSE and EXPIRY deadlines): at the deadline the position is
sold at the bid of the latest quote of the contract known then (stamped at the deadline) when the
model accepts that quote at that time (a bid, fresh within ``max_quote_age_ns``, not crossed, the
size when known, regular hours). When it refuses, the position stays open and is sold at the
first later quote the model accepts, stamped at that quote's time. Both give EXPIRED here. A
signal still open when its contract expires is closed EXPIRED at the expiry, at the intrinsic
value of the underlying's price passed to :meth:`LifecycleTracker.on_time` (0 without one).

Each change is stamped with the quote's (or the deadline's) time in ``updated_ns``. Returns the
changed signals, in signal id order; persistence is the caller's job.
"""

from __future__ import annotations

import heapq
import math

from aiots.core.execution import ExecutionModel, Fill, Quote
from aiots.services.signals.models import OptionQuote, Signal, Status, StatusChange


def exec_quote(q: OptionQuote) -> Quote:
    """The execution model's view of an engine quote (0 on a side = not quoted; size 0 = unknown)."""
    return Quote(
        q.bid if q.bid > 0 else math.nan,
        q.ask if q.ask > 0 else math.nan,
        q.ts_ns,
        q.bid_size if q.bid_size > 0 else math.nan,
        q.ask_size if q.ask_size > 0 else math.nan,
    )


def exit_at_deadline(model: ExecutionModel, known: Quote | None, deadline_ns: int) -> Fill | None:
    """The decision at the deadline: a sell at the bid of ``known``, the latest quote of the
    contract known at ``deadline_ns``, stamped at the deadline; None when the model refuses it.

    ``known`` newer than the deadline means the decision was already taken when the first quote
    after the deadline arrived (:func:`exit_past_deadline`): None."""
    if known is not None and known.ts_ns > deadline_ns:
        return None
    fill = model.sell(known, deadline_ns)
    return fill if isinstance(fill, Fill) else None


def exit_past_deadline(model: ExecutionModel, known: Quote | None, q: Quote, deadline_ns: int) -> Fill | None:
    """A position past its deadline (or reaching it) meets the quote ``q`` (``q.ts_ns >= deadline_ns``);
    ``known`` is the contract's latest quote before ``q``.

    When ``q`` is the first quote after the deadline, the deadline decision is taken first on
    ``known``. Otherwise (or when that is refused) a sell at ``q``'s bid, stamped at ``q``'s time."""
    if q.ts_ns > deadline_ns:
        fill = exit_at_deadline(model, known, deadline_ns)
        if fill is not None:
            return fill
    res = model.sell(q, q.ts_ns)
    return res if isinstance(res, Fill) else None


class LifecycleTracker:
    """Holds the open signals, keyed by contract, and the latest quote of each of those contracts."""

    def __init__(self, execution: ExecutionModel | None = None) -> None:
        self.execution = execution or ExecutionModel()
        self._by_occ: dict[str, dict[str, Signal]] = {}
        self._latest: dict[str, OptionQuote] = {}  # per contract with open signals
        #: :meth:`on_time` has nothing to decide before this (a lower bound): the earliest decision
        #: time in the queues below
        self.next_decision_ns: float = math.inf
        #: signal id -> (the latest quote, the horizon) its horizon decision was refused on
        self._refused: dict[str, tuple[OptionQuote | None, int]] = {}
        #: the open signals per underlying (signal id -> signal)
        self._by_sym: dict[str, dict[str, Signal]] = {}
        #: per underlying, a min-heap of (decision time ns, signal id): a signal's horizon, or the
        #: expiry of one whose horizon decision was refused on its contract's latest quote (the same
        #: answer until another quote). An entry holds only while ``_at`` gives its signal that time
        #: (a later schedule or the signal's close leaves it stale, dropped when it surfaces), so
        #: :meth:`on_time` costs O(due x log n), not O(open).
        self._due: dict[str, list[tuple[int, str]]] = {}
        self._at: dict[str, int] = {}  # signal id -> its one live entry's decision time
        #: open signals per strategy, kept as they open and close (the gauge reads it per store)
        self._per_strategy: dict[str, int] = {}

    def add(self, sig: Signal) -> None:
        if sig.status is Status.OPEN:
            occ = sig.contract.occ_symbol
            group = self._by_occ.setdefault(occ, {})
            old_sig = group.get(sig.id)
            if old_sig is not None:
                self._count(old_sig.strategy, -1)
            group[sig.id] = sig
            self._count(sig.strategy, 1)
            self._by_sym.setdefault(sig.symbol, {})[sig.id] = sig
            self._schedule(sig, sig.horizon_ns)
            old = self._latest.get(occ)
            if old is None or sig.contract.ts_ns > old.ts_ns:
                self._latest[occ] = sig.contract  # the quote selection used: the latest known then
                self._rearm(group, sig.contract.ts_ns)  # a refused decision on this contract may now differ

    def replace(self, sig: Signal) -> None:
        """Track ``sig`` instead of any local signal with the same id (another replica's version won)."""
        for occ in list(self._by_occ):
            group = self._by_occ[occ]
            gone = group.pop(sig.id, None)
            if gone is not None:
                self._count(gone.strategy, -1)
                if not group:
                    del self._by_occ[occ]
                    self._latest.pop(occ, None)
        for sym in list(self._by_sym):
            mine = self._by_sym[sym]
            if mine.pop(sig.id, None) is not None and not mine:
                del self._by_sym[sym]
        self._at.pop(sig.id, None)
        self.add(sig)

    def _schedule(self, sig: Signal, at_ns: int) -> None:
        """Decide ``sig`` at ``at_ns`` (its horizon, or its expiry while refused)."""
        self._at[sig.id] = at_ns
        heapq.heappush(self._due.setdefault(sig.symbol, []), (at_ns, sig.id))
        if at_ns < self.next_decision_ns:
            self.next_decision_ns = at_ns

    def _rearm(self, group: dict[str, Signal], quote_ns: int) -> None:
        """The contract of ``group`` has a new latest quote, stamped ``quote_ns``: its signals' refused
        horizon decisions may differ, so each is due again at its horizon (once: later quotes find it
        scheduled). Not one whose horizon is before the quote: the decision at a deadline is refused
        on any quote newer than it (:func:`exit_at_deadline`), so it would be refused again (the
        first quote past the deadline settles it in :meth:`on_quote`)."""
        for s in group.values():
            if s.horizon_ns >= quote_ns and self._at.get(s.id) != s.horizon_ns:
                self._schedule(s, s.horizon_ns)

    def open_signals(self) -> list[Signal]:
        return [s for group in self._by_occ.values() for s in group.values()]

    def open_counts(self) -> dict[str, int]:
        """Open signals per strategy (strategies with none left out), without walking them."""
        return dict(self._per_strategy)

    def _count(self, strategy: str, delta: int) -> None:
        n = self._per_strategy.get(strategy, 0) + delta
        if n:
            self._per_strategy[strategy] = n
        else:
            self._per_strategy.pop(strategy, None)

    def _close(self, sig: Signal, status: Status, at_ns: int, price: float, note: str) -> Signal:
        sig.status = status
        sig.exit_ns = at_ns
        sig.exit_price = price
        sig.updated_ns = at_ns
        sig.history.append(StatusChange(status, at_ns, price, note))
        occ = sig.contract.occ_symbol
        group = self._by_occ.get(occ, {})
        gone = group.pop(sig.id, None)
        if gone is not None:
            self._count(gone.strategy, -1)
        self._refused.pop(sig.id, None)
        self._at.pop(sig.id, None)
        mine = self._by_sym.get(sig.symbol)
        if mine is not None:
            mine.pop(sig.id, None)
            if not mine:
                del self._by_sym[sig.symbol]
        if not group:
            self._by_occ.pop(occ, None)
            self._latest.pop(occ, None)
        return sig

    def _expire(self, sig: Signal, fill: Fill) -> Signal:
        note = "horizon reached" if fill.ts_ns == sig.horizon_ns else "past the horizon: first executable bid"
        return self._close(sig, Status.EXPIRED, fill.ts_ns, fill.price, note)

    def on_quote(self, q: OptionQuote) -> list[Signal]:
        """Check the open signals on this contract against its new quote."""
        group = self._by_occ.get(q.occ_symbol)
        if not group:
            return []
        prev = self._latest.get(q.occ_symbol)
        if prev is None or q.ts_ns >= prev.ts_ns:
            self._latest[q.occ_symbol] = q
            self._rearm(group, q.ts_ns)  # a refused horizon decision may now differ
        known = exec_quote(prev) if prev is not None else None
        eq = exec_quote(q)
        changed: list[Signal] = []
        for sig in sorted(group.values(), key=lambda s: s.id):
            if q.ts_ns < sig.created_ns:
                continue
            if q.ts_ns >= sig.horizon_ns:
                fill = exit_past_deadline(self.execution, known, eq, sig.horizon_ns)
                if fill is not None:
                    changed.append(self._expire(sig, fill))
            elif q.bid <= 0:
                continue
            elif q.bid >= sig.target_price:
                note = f"bid {q.bid:.2f} >= target {sig.target_price:.2f}"
                changed.append(self._close(sig, Status.TARGET_HIT, q.ts_ns, q.bid, note))
            elif q.bid <= sig.stop_price:
                note = f"bid {q.bid:.2f} <= stop {sig.stop_price:.2f}"
                changed.append(self._close(sig, Status.STOPPED, q.ts_ns, q.bid, note))
        return changed

    def on_time(self, now_ns: int, symbol: str | None = None, spot: float | None = None) -> list[Signal]:
        """Take the horizon decision of the signals whose horizon has passed (optionally only this
        underlying's), and settle those whose contract has expired (at the intrinsic value of
        ``spot``, the underlying's price now, when given)."""
        if now_ns < self.next_decision_ns:  # nothing is due anywhere
            return []
        due: list[Signal] = []
        for sym in list(self._due) if symbol is None else [symbol]:
            heap = self._due.get(sym)
            mine = self._by_sym.get(sym, {})
            while heap and heap[0][0] <= now_ns:
                at, sid = heapq.heappop(heap)
                if self._at.get(sid) == at and sid in mine:
                    del self._at[sid]
                    due.append(mine[sid])
        changed: list[Signal] = []
        for sig in sorted(due, key=lambda s: s.id):  # id order
            latest = self._latest.get(sig.contract.occ_symbol)
            if self._waits(sig, latest) and now_ns < sig.contract.expiry_ns:
                self._schedule(sig, sig.contract.expiry_ns)  # exit_at_deadline would refuse again
                continue
            fill = exit_at_deadline(self.execution, exec_quote(latest) if latest else None, sig.horizon_ns)
            if fill is not None:
                changed.append(self._expire(sig, fill))
            elif now_ns >= sig.contract.expiry_ns:
                c = sig.contract
                value = 0.0
                if spot is not None and math.isfinite(spot):
                    value = max(0.0, spot - c.strike if c.is_call else c.strike - spot)
                note = "contract expired with no executable bid after the horizon; intrinsic value"
                changed.append(self._close(sig, Status.EXPIRED, c.expiry_ns, value, note))
            else:
                self._refused[sig.id] = (latest, sig.horizon_ns)
                self._schedule(sig, sig.contract.expiry_ns)
        self.next_decision_ns = min((self._top(sym) for sym in list(self._due)), default=math.inf)
        return changed

    def _top(self, sym: str) -> float:
        """The earliest live decision time of ``sym``'s queue (stale entries on top dropped; an
        emptied queue removed), inf when none."""
        heap = self._due[sym]
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if not heap:
            del self._due[sym]
            return math.inf
        return heap[0][0]

    def _waits(self, sig: Signal, latest: OptionQuote | None) -> bool:
        """Whether ``sig``'s horizon decision was refused on ``latest`` (the decision depends only
        on that quote, the horizon and the execution model: refused again until another quote)."""
        r = self._refused.get(sig.id)
        return r is not None and r[0] is latest and r[1] == sig.horizon_ns
