"""Positions, cash and realised P&L derived from the order/fill log (oldest first).

Accounting: each fill moves cash by its ``cash_flow`` (a buy pays premium + fees, a sell receives
premium - fees). A position's ``basis`` is the cash paid for its open contracts, fees included
(negative for a short: the credit received). A fill that reduces a position releases the
proportional basis and realises ``cash_flow of the closing part - released basis``, so a long
bought at ``a`` and sold at ``b`` realises ``(b - a) x q x 100 - fees of both legs`` (the
``round_trip_pnl`` of the execution model). A fill crossing zero closes, then opens the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiots.core.conventions import CONTRACT_MULTIPLIER, ny_date
from aiots.services.portfolio.models import OrderRecord


@dataclass(slots=True)
class PositionState:
    """An open position: signed contracts, basis (fees in) and the fill notional (fees out)."""

    contract: str
    underlying: str
    quantity: int = 0
    basis: float = 0.0
    notional: float = 0.0

    @property
    def average_price(self) -> float:
        """Average fill price of the open contracts per share (fees excluded)."""
        return self.notional / (self.quantity * CONTRACT_MULTIPLIER) if self.quantity else 0.0


@dataclass(slots=True)
class Ledger:
    """State derived from the log; :meth:`apply` is the only way it changes."""

    cash: float
    realized: float = 0.0
    realized_by_day: dict[dt.date, float] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)

    @classmethod
    def replay(cls, starting_cash: float, orders: Iterable[OrderRecord]) -> Ledger:
        led = cls(cash=starting_cash)
        for o in orders:
            led.apply(o)
        return led

    def apply(self, o: OrderRecord) -> float:
        """Apply one fill; returns the P&L it realised."""
        self.cash += o.cash_flow
        pos = self.positions.get(o.contract) or PositionState(o.contract, o.underlying)
        dq = o.signed_quantity
        price_notional = o.fill_price * o.quantity * CONTRACT_MULTIPLIER
        realized = 0.0
        if pos.quantity == 0 or (pos.quantity > 0) == (dq > 0):
            pos.quantity += dq
            pos.basis -= o.cash_flow
            pos.notional += price_notional if dq > 0 else -price_notional
        else:
            closing = min(abs(dq), abs(pos.quantity))
            frac_pos = closing / abs(pos.quantity)
            frac_fill = closing / abs(dq)
            released = pos.basis * frac_pos
            realized = o.cash_flow * frac_fill - released
            pos.basis -= released
            pos.notional -= pos.notional * frac_pos
            pos.quantity += closing if dq > 0 else -closing
            rest = abs(dq) - closing
            if rest:
                pos.quantity += rest if dq > 0 else -rest
                pos.basis -= o.cash_flow * (1.0 - frac_fill)
                pos.notional += price_notional * (1.0 - frac_fill) * (1 if dq > 0 else -1)
        if pos.quantity == 0:
            pos.basis = pos.notional = 0.0
            self.positions.pop(o.contract, None)
        else:
            self.positions[o.contract] = pos
        if realized:
            self.realized += realized
            day = ny_date(o.filled_ns)
            self.realized_by_day[day] = self.realized_by_day.get(day, 0.0) + realized
        return realized

    def realized_on(self, day: dt.date) -> float:
        """P&L realised by fills of the New York calendar day ``day``."""
        return self.realized_by_day.get(day, 0.0)

    def open_positions(self) -> list[PositionState]:
        return sorted(self.positions.values(), key=lambda p: p.contract)
