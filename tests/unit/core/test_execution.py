"""The fill model, hand-derived: buys at the ask, sells at the bid, $0.65 per contract, refusals with
their reasons, limits only when marketable, and the round-trip arithmetic (100 shares a contract).
Times: 2025-03-03 (a Monday session) 15:00 UTC = 10:00 New York; 2025-03-01 is a Saturday."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from aiots.core.conventions import NS_PER_S, datetime_to_ns
from aiots.core.execution import ExecutionModel, Fill, Quote, Refusal, Refused

OPEN = datetime_to_ns(dt.datetime(2025, 3, 3, 15, 0, tzinfo=dt.UTC))
SATURDAY = datetime_to_ns(dt.datetime(2025, 3, 1, 15, 0, tzinfo=dt.UTC))
M = ExecutionModel()


def _reason(r: Fill | Refused) -> Refusal | None:
    return r.reason if isinstance(r, Refused) else None


def test_market_orders_fill_at_the_touch_with_fees() -> None:
    q = Quote(bid=1.20, ask=1.30, ts_ns=OPEN - 5 * NS_PER_S, bid_size=10, ask_size=10)
    buy, sell = M.buy(q, OPEN, 3), M.sell(q, OPEN, 2)
    assert isinstance(buy, Fill) and (buy.price, buy.fees) == (1.30, pytest.approx(1.95))
    assert buy.cash_flow == pytest.approx(-(1.30 * 3 * 100) - 1.95)
    assert isinstance(sell, Fill) and sell.price == 1.20 and sell.cash_flow == pytest.approx(240 - 1.30)


def test_refusals() -> None:
    fresh = OPEN - NS_PER_S
    assert _reason(M.buy(None, OPEN)) == Refusal.NO_QUOTE
    assert _reason(M.buy(Quote(1.2, 1.3, fresh), SATURDAY)) == Refusal.OUTSIDE_HOURS
    assert _reason(M.buy(Quote(1.2, 1.3, OPEN - 61 * NS_PER_S), OPEN)) == Refusal.STALE_QUOTE
    assert _reason(M.buy(Quote(1.4, 1.3, fresh), OPEN)) == Refusal.CROSSED
    assert _reason(M.buy(Quote(1.2, math.nan, fresh), OPEN)) == Refusal.NO_ASK
    assert _reason(M.sell(Quote(0.0, 1.3, fresh), OPEN)) == Refusal.NO_BID
    assert _reason(M.buy(Quote(1.2, 1.3, fresh, ask_size=2), OPEN, 3)) == Refusal.INSUFFICIENT_SIZE
    assert _reason(M.buy(Quote(1.2, 1.3, fresh), OPEN, limit=1.29)) == Refusal.LIMIT_NOT_MARKETABLE
    assert _reason(M.sell(Quote(1.2, 1.3, fresh), OPEN, limit=1.21)) == Refusal.LIMIT_NOT_MARKETABLE
    assert isinstance(M.buy(Quote(1.2, 1.3, fresh), OPEN, limit=1.30), Fill)
    assert isinstance(ExecutionModel(regular_hours_only=False).buy(Quote(1.2, 1.3, SATURDAY), SATURDAY), Fill)


def test_round_trip_arithmetic() -> None:
    entry = Fill("BUY", 2.00, 1, 0.65, OPEN, 1.9, 2.0)
    dollars, pct = M.round_trip_pnl(entry, 2.50)
    assert dollars == pytest.approx(250 - 0.65 - 200 - 0.65) and pct == pytest.approx(100 * dollars / 200.65)
    assert M.round_trip_pnl(entry, M.breakeven_exit(2.00))[0] == pytest.approx(0.0, abs=1e-9)
    assert M.round_trip_pnl(entry, M.exit_for_return(2.00, 10.0))[1] == pytest.approx(10.0)
    assert M.long_exit_price(Quote(1.2, 1.3, OPEN)) == 1.2 and math.isnan(M.long_exit_price(Quote(0, 1.3, OPEN)))
