"""An account following signals by a rule enters on each matching signal at the ask the signal
saw and exits at the bid of its outcome, through the same execution model, so its realised P&L
is the signals' outcomes measured from executable fills.

Oracle: hand-computed round trips, (exit bid - entry ask) x contracts x 100 - $0.65 x contracts
x 2, from the signal messages as the signals service publishes them (aiots.v1.Signal).
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from aiots.core import conventions as cv
from aiots.services.portfolio.book import Follower
from aiots.services.portfolio.conversions import signal_view
from aiots.v1 import common_pb2
from aiots.v1 import portfolio_pb2 as pb
from aiots.v1 import signals_pb2 as spb

from .conftest import AAPL_C, AAPL_P, MSFT_C, T0, Tape, start_stack, stop_stack


def signal(
    sid: str, occ: str, strategy: str, conf: float, bid: float, ask: float, at_ns: int, symbol: str = "AAPL"
) -> spb.Signal:
    m = spb.Signal(
        id=sid, symbol=symbol, strategy=strategy, confidence=conf, bid=bid, ask=ask, entry_price=(bid + ask) / 2,
        underlying_price=228.0, status=spb.SIGNAL_STATUS_OPEN,
        contract=common_pb2.OptionContract(occ_symbol=occ, underlying=symbol),
    )  # fmt: skip
    m.created_at.FromNanoseconds(at_ns)
    return m


def closed(m: spb.Signal, status: int, exit_bid: float, at_ns: int) -> spb.Signal:
    out = spb.Signal()
    out.CopyFrom(m)
    out.status = status  # type: ignore[assignment]
    out.outcome.exit_price = exit_bid
    out.outcome.exit_time.FromNanoseconds(at_ns)
    return out


async def test_following_account_matches_signal_outcomes(make_database: Callable[..., str]) -> None:
    pool = await asyncpg.create_pool(make_database(True), min_size=1, max_size=4)
    tape = Tape()
    s = await start_stack(pool, tape)
    try:
        acct = (await s.stub.CreateAccount(pb.CreateAccountRequest(name="f", cash=50_000), metadata=s.md())).account.id
        other = (await s.stub.CreateAccount(pb.CreateAccountRequest(name="o", cash=50_000), metadata=s.md())).account
        rule = pb.FollowRule(
            enabled=True, strategies=["momentum_breakout"], symbols=["AAPL"], min_confidence=0.6, contracts_per_signal=2
        )
        r = await s.stub.SetFollowRule(pb.SetFollowRuleRequest(account_id=acct, rule=rule), metadata=s.md())
        assert r.account.follow.enabled and list(r.account.follow.strategies) == ["momentum_breakout"]
        follower = Follower(s.portfolio)
        minute = 60 * cv.NS_PER_S

        s1 = signal("01S1", AAPL_C, "momentum_breakout", 0.7, 2.00, 2.10, T0)
        s2 = signal("01S2", AAPL_C, "momentum_breakout", 0.5, 2.00, 2.10, T0)  # below min confidence
        s3 = signal("01S3", AAPL_P, "momentum_breakout", 0.8, 3.00, 3.20, T0)
        s4 = signal("01S4", MSFT_C, "momentum_breakout", 0.9, 8.00, 8.40, T0, "MSFT")  # not a followed symbol
        s5 = signal("01S5", AAPL_C, "mean_reversion", 0.9, 2.00, 2.10, T0)  # not a followed strategy
        tape.now = T0 + cv.NS_PER_S
        for m in (s1, s2, s3, s4, s5):
            await follower.on_signal(signal_view(m))
        await follower.on_signal(signal_view(s1))  # a redelivered event never enters twice

        tape.now = T0 + 30 * minute
        await follower.on_signal(signal_view(closed(s1, spb.SIGNAL_STATUS_TARGET_HIT, 2.25, tape.now - cv.NS_PER_S)))
        await follower.on_signal(signal_view(closed(s3, spb.SIGNAL_STATUS_STOPPED, 2.90, tape.now - cv.NS_PER_S)))
        await follower.on_signal(signal_view(closed(s2, spb.SIGNAL_STATUS_TARGET_HIT, 2.25, tape.now)))  # no entry
        await follower.on_signal(signal_view(closed(s1, spb.SIGNAL_STATUS_TARGET_HIT, 2.25, tape.now - cv.NS_PER_S)))

        a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
        expected = [(2.25 - 2.10) * 200 - 2 * 2 * 0.65, (2.90 - 3.20) * 200 - 2 * 2 * 0.65]  # 27.40, -62.60
        assert a.realized_pnl == pytest.approx(sum(expected))
        assert a.cash == pytest.approx(50_000 + sum(expected))
        assert not a.positions
        orders = (await s.stub.ListOrders(pb.ListOrdersRequest(account_id=acct), metadata=s.md())).orders
        got = sorted((o.signal_id, o.side, o.quantity, o.fill_price, o.source) for o in orders)
        assert got == [
            ("01S1", "BUY", 2, 2.10, "follow"),
            ("01S1", "SELL", 2, 2.25, "follow"),
            ("01S3", "BUY", 2, 3.20, "follow"),
            ("01S3", "SELL", 2, 2.90, "follow"),
        ]
        assert sorted(o.realized_pnl for o in orders if o.side == "SELL") == pytest.approx(sorted(expected))
        # the account that does not follow has nothing
        o2 = (await s.stub.ListOrders(pb.ListOrdersRequest(account_id=other.id), metadata=s.md())).orders
        assert not o2
    finally:
        await stop_stack(s)
        await pool.close()


async def test_signal_suggested_size_and_stale_signal(make_database: Callable[..., str]) -> None:
    pool = await asyncpg.create_pool(make_database(True), min_size=1, max_size=4)
    tape = Tape()
    s = await start_stack(pool, tape)
    try:
        acct = (await s.stub.CreateAccount(pb.CreateAccountRequest(name="f", cash=50_000), metadata=s.md())).account.id
        rule = pb.FollowRule(enabled=True, use_signal_size=True, contracts_per_signal=1)
        await s.stub.SetFollowRule(pb.SetFollowRuleRequest(account_id=acct, rule=rule), metadata=s.md())
        follower = Follower(s.portfolio)
        m = signal("01T1", AAPL_C, "x", 0.9, 2.00, 2.10, T0)
        m.suggested_contracts = 3
        tape.now = T0 + cv.NS_PER_S
        (entry,) = await follower.on_signal(signal_view(m))
        assert entry.quantity == 3  # the signal's size, not contracts_per_signal
        # a signal whose quote is older than the execution model allows is not entered
        tape.now = T0 + 10 * 60 * cv.NS_PER_S
        assert await follower.on_signal(signal_view(signal("01T2", AAPL_C, "x", 0.9, 2.0, 2.1, T0))) == []
    finally:
        await stop_stack(s)
        await pool.close()


async def test_refused_exit_is_retried_at_the_live_quote(make_database: Callable[..., str]) -> None:
    """An exit the execution model refused (its quote too old by the time the event arrived) stays
    open until the sweep sells at the live bid, once."""
    pool = await asyncpg.create_pool(make_database(True), min_size=1, max_size=4)
    tape = Tape()
    s = await start_stack(pool, tape)
    try:
        acct = (await s.stub.CreateAccount(pb.CreateAccountRequest(name="f", cash=50_000), metadata=s.md())).account.id
        await s.stub.SetFollowRule(
            pb.SetFollowRuleRequest(account_id=acct, rule=pb.FollowRule(enabled=True)), metadata=s.md()
        )
        follower = Follower(s.portfolio)
        m = signal("01U1", AAPL_C, "x", 0.9, 2.00, 2.10, T0)
        tape.now = T0 + cv.NS_PER_S
        assert len(await follower.on_signal(signal_view(m))) == 1
        exit_ns = T0 + 60 * cv.NS_PER_S
        done = closed(m, spb.SIGNAL_STATUS_STOPPED, 1.80, exit_ns)
        tape.now = exit_ns + 5 * 60 * cv.NS_PER_S  # the event is handled 5 minutes late: its quote is stale
        assert await follower.on_signal(signal_view(done)) == []
        assert await follower.sweep() == []  # not closed in the signals table yet
        await pool.execute(
            "INSERT INTO signals (id, created_at, symbol, strategy, status, payload) "
            "VALUES ($1, now(), 'AAPL', 'x', $2, $3)",
            "01U1", spb.SIGNAL_STATUS_STOPPED, done.SerializeToString(),
        )  # fmt: skip
        tape.set(AAPL_C, 1.70, 1.85, spot=226.0)
        (o,) = await follower.sweep()
        assert (o.side, o.quantity, o.fill_price, o.client_order_id) == ("SELL", 1, 1.70, "follow:01U1:close")
        assert await follower.sweep() == []  # once
        a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
        assert not a.positions and a.realized_pnl == pytest.approx((1.70 - 2.10) * 100 - 1.30)
    finally:
        await stop_stack(s)
        await pool.close()
