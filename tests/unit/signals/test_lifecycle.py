"""Exit rules on hand-built quotes: target and stop both on the bid (executable), horizon at the last
bid, P&L from the exit price after fees on both legs, updates stamped with the quote's time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aiots.services.signals.lifecycle import LifecycleTracker
from aiots.services.signals.models import Direction, GreeksTU, OptionQuote, Signal, Status

T0 = 1_760_000_000 * 10**9
Q = OptionQuote("AAPL  251017C00200000", "AAPL", "2025-10-17", T0 + 10**15, 200.0, True, 1.98, 2.02, ts_ns=T0)


def sig(i: str = "A", fee: float = 0.0) -> Signal:
    return Signal(
        id=i, created_ns=T0, symbol="AAPL", underlying_price=200.0, direction=Direction.BULLISH,
        strategy="momentum_breakout", contract=Q, entry_price=2.02, target_price=2.16, stop_price=1.90,
        horizon_ns=T0 + 3600 * 10**9, confidence=0.5, expected_return_pct=3, reward_risk=1.1,
        greeks=GreeksTU(0.5, 0.05, -0.1, 0.2, 0.03), iv=0.3, iv_rank=40, reasons=(), projected_move=3.0,
        fee_per_contract=fee,
    )  # fmt: skip


def test_stop_triggers_on_the_bid_and_fills_there() -> None:
    t = LifecycleTracker()
    t.add(sig())
    # ask above the target but bid below it: a holder can't sell there yet
    assert t.on_quote(replace(Q, bid=2.10, ask=2.20, ts_ns=T0 + 2)) == []
    assert t.on_quote(replace(Q, bid=1.91, ask=1.95, ts_ns=T0 + 3)) == []  # bid above the stop
    (s,) = t.on_quote(replace(Q, bid=1.90, ask=1.94, ts_ns=T0 + 4))  # bid at the stop
    assert s.status is Status.STOPPED and s.exit_price == 1.90 and s.updated_ns == T0 + 4
    assert s.pnl_pct == pytest.approx((1.90 / 2.02 - 1) * 100)


def test_pnl_after_fees_on_both_legs() -> None:
    t = LifecycleTracker()
    t.add(sig(fee=0.65))
    (s,) = t.on_quote(replace(Q, bid=2.17, ask=2.21, ts_ns=T0 + 5))
    # bought at 2.02 + 0.0065/share fees, sold at 2.17 - 0.0065: by hand
    assert s.pnl_pct == pytest.approx(((2.17 - 0.0065) / (2.02 + 0.0065) - 1) * 100)


def test_target_hit_and_expiry() -> None:
    t = LifecycleTracker()
    t.add(sig("A"))
    (s,) = t.on_quote(replace(Q, bid=2.17, ask=2.21, ts_ns=T0 + 5))
    assert s.status is Status.TARGET_HIT and s.exit_price == 2.17 and t.open_signals() == []
    t.add(sig("B"))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=T0 + 6))
    assert t.on_time(T0 + 3599 * 10**9) == []
    (e,) = t.on_time(T0 + 3600 * 10**9)
    assert e.status is Status.EXPIRED and e.exit_price == 2.01  # the last bid seen
    assert [h.status for h in e.history] == [Status.EXPIRED] and e.updated_ns == T0 + 3600 * 10**9


def test_expiry_without_later_quotes_sells_at_the_entry_quotes_bid() -> None:
    t = LifecycleTracker()
    t.add(replace(sig("C"), contract=replace(Q, occ_symbol="AAPL  251017C00205000")))
    (e,) = t.on_time(T0 + 3600 * 10**9)
    assert e.exit_price == Q.bid  # never the mid: only the bid can be sold at
