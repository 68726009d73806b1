"""Exit rules on hand-built quotes: target on the bid, stop on the mid (filled at the bid), horizon."""

from __future__ import annotations

from dataclasses import replace

from aiots.services.signals.lifecycle import LifecycleTracker
from aiots.services.signals.models import Direction, GreeksTU, OptionQuote, Signal, Status

T0 = 1_760_000_000 * 10**9
Q = OptionQuote("AAPL  251017C00200000", "AAPL", "2025-10-17", T0 + 10**15, 200.0, True, 1.98, 2.02, ts_ns=T0)


def sig(i: str = "A") -> Signal:
    return Signal(
        id=i, created_ns=T0, symbol="AAPL", underlying_price=200.0, direction=Direction.BULLISH,
        strategy="momentum_breakout", contract=Q, entry_price=2.0, target_price=2.16, stop_price=1.90,
        horizon_ns=T0 + 3600 * 10**9, confidence=0.5, expected_return_pct=12, reward_risk=1.6,
        greeks=GreeksTU(0.5, 0.05, -0.1, 0.2, 0.03), iv=0.3, iv_rank=40, reasons=(), projected_move=3.0,
    )  # fmt: skip


def test_target_on_bid_stop_on_mid() -> None:
    t = LifecycleTracker()
    t.add(sig())
    # bid below the stop but mid above it: the spread alone does not stop the idea out
    assert t.on_quote(replace(Q, bid=1.88, ask=1.94, ts_ns=T0 + 1)) == []
    # ask above the target but bid below: not reachable yet
    assert t.on_quote(replace(Q, bid=2.10, ask=2.20, ts_ns=T0 + 2)) == []
    (s,) = t.on_quote(replace(Q, bid=1.85, ask=1.93, ts_ns=T0 + 3))  # mid 1.89 <= 1.90
    assert s.status is Status.STOPPED and s.exit_price == 1.85 and s.pnl_pct == (1.85 / 2.0 - 1) * 100


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
    assert [h.status for h in e.history] == [Status.EXPIRED]
