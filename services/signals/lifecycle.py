"""Open signals watched against live option quotes and time.

Exit rules (premiums per share), all on the price a long holder can sell at, the **bid**: the bid
at or above the target -> TARGET_HIT at the bid; the bid at or below the stop -> STOPPED at the
bid; the horizon (which the engine ends before the session's close) passing first -> EXPIRED at
the last bid seen (0 when the contract never had a bid: nothing could be sold). The entry is the
ask and the stop sits at least two spreads below it, so the spread alone does not stop an idea
out. Each change is stamped with the quote's (or the clock's) time in ``updated_ns``. Returns the
changed signals; persistence is the caller's job.
"""

from __future__ import annotations

from aiots.services.signals.models import OptionQuote, Signal, Status, StatusChange


class LifecycleTracker:
    """Holds the open signals, keyed by contract."""

    def __init__(self) -> None:
        self._by_occ: dict[str, dict[str, Signal]] = {}
        self._last_bid: dict[str, float] = {}

    def add(self, sig: Signal) -> None:
        if sig.status is Status.OPEN:
            self._by_occ.setdefault(sig.contract.occ_symbol, {})[sig.id] = sig
            if sig.contract.bid > 0:
                self._last_bid.setdefault(sig.contract.occ_symbol, sig.contract.bid)

    def replace(self, sig: Signal) -> None:
        """Track ``sig`` instead of any local signal with the same id (another replica's version won)."""
        for occ in list(self._by_occ):
            group = self._by_occ[occ]
            if group.pop(sig.id, None) is not None and not group:
                del self._by_occ[occ]
        self.add(sig)

    def open_signals(self) -> list[Signal]:
        return [s for group in self._by_occ.values() for s in group.values()]

    def _close(self, sig: Signal, status: Status, at_ns: int, price: float, note: str) -> Signal:
        sig.status = status
        sig.exit_ns = at_ns
        sig.exit_price = price
        sig.updated_ns = at_ns
        sig.history.append(StatusChange(status, at_ns, price, note))
        group = self._by_occ.get(sig.contract.occ_symbol, {})
        group.pop(sig.id, None)
        if not group:
            self._by_occ.pop(sig.contract.occ_symbol, None)
        return sig

    def on_quote(self, q: OptionQuote) -> list[Signal]:
        """Check the open signals on this contract against its new quote."""
        group = self._by_occ.get(q.occ_symbol)
        if q.bid > 0:
            self._last_bid[q.occ_symbol] = q.bid
        if not group or q.bid <= 0:
            return []
        changed: list[Signal] = []
        for sig in sorted(group.values(), key=lambda s: s.id):
            if q.ts_ns < sig.created_ns:
                continue
            if q.ts_ns >= sig.horizon_ns:
                changed.append(self._close(sig, Status.EXPIRED, sig.horizon_ns, q.bid, "horizon reached"))
            elif q.bid >= sig.target_price:
                note = f"bid {q.bid:.2f} >= target {sig.target_price:.2f}"
                changed.append(self._close(sig, Status.TARGET_HIT, q.ts_ns, q.bid, note))
            elif q.bid <= sig.stop_price:
                note = f"bid {q.bid:.2f} <= stop {sig.stop_price:.2f}"
                changed.append(self._close(sig, Status.STOPPED, q.ts_ns, q.bid, note))
        return changed

    def on_time(self, now_ns: int, symbol: str | None = None) -> list[Signal]:
        """Expire the signals whose horizon has passed (optionally only this underlying's)."""
        changed: list[Signal] = []
        for sig in sorted(self.open_signals(), key=lambda s: s.id):
            if (symbol is None or sig.symbol == symbol) and now_ns >= sig.horizon_ns:
                price = self._last_bid.get(sig.contract.occ_symbol, 0.0)
                changed.append(self._close(sig, Status.EXPIRED, sig.horizon_ns, price, "horizon reached"))
        return changed
