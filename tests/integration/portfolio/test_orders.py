"""Orders: idempotent retries under concurrency (one server and two replicas on one database),
a restart deriving the same positions from the log, each refusal of the execution model and each
risk limit naming itself, and accounts invisible to other subjects.

Oracles: the numbers are hand-computed from the scripted tape (buy at the ask, sell at the bid,
$0.65 per contract per fill); Greek-based limits are checked against py_vollib's BSM delta/vega.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import grpc
import pytest
from py_vollib.black_scholes_merton.greeks import analytical as bsm
from py_vollib.black_scholes_merton.implied_volatility import implied_volatility

from aiots.core import conventions as cv
from aiots.v1 import portfolio_pb2 as pb

from .conftest import AAPL_C, AAPL_P, MSFT_C, RATE, SESSION, Stack, Tape, details, start_stack, stop_stack


async def create(s: Stack, cash: float = 100_000.0, subject: str | None = None) -> str:
    r = await s.stub.CreateAccount(pb.CreateAccountRequest(name="t", cash=cash), metadata=s.md(subject))
    return r.account.id


def req(acct: str, cid: str, side: str = "BUY", qty: float = 1, contract: str = AAPL_C) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(account_id=acct, client_order_id=cid, contract=contract, side=side, quantity=qty)


async def get(s: Stack, acct: str) -> pb.Account:
    return (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account


async def refused(s: Stack, r: pb.PlaceOrderRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await s.stub.PlaceOrder(r, metadata=s.md())
    return e.value


async def test_concurrent_retries_fill_once(stack: Stack) -> None:
    s = stack
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    acct = await create(s, 10_000.0)
    res = await asyncio.gather(*(s.stub.PlaceOrder(req(acct, "same", qty=2), metadata=s.md()) for _ in range(16)))
    assert len({r.order.id for r in res}) == 1
    assert sorted(r.order.replayed for r in res) == [False] + [True] * 15
    a = await get(s, acct)
    assert a.cash == pytest.approx(10_000 - 1_041.30)  # one fill
    assert [p.quantity for p in a.positions] == [2]
    orders = (await s.stub.ListOrders(pb.ListOrdersRequest(account_id=acct), metadata=s.md())).orders
    assert len(orders) == 1
    # a retry long after, with a different quote, still returns the first order unchanged
    s.tape.set(AAPL_C, 6.00, 6.20, spot=230.0)
    again = (await s.stub.PlaceOrder(req(acct, "same", qty=2), metadata=s.md())).order
    assert again.replayed and again.id == res[0].order.id and again.fill_price == 5.20


async def test_two_replicas_share_one_log(pg_pool: asyncpg.Pool, pg_dsn: str) -> None:
    tape = Tape()
    tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    pool2 = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    a, b = await start_stack(pg_pool, tape), await start_stack(pool2, tape)
    b.subject = a.subject
    try:
        acct = await create(a, 10_000.0)
        calls = [x.stub.PlaceOrder(req(acct, f"r{i // 2}"), metadata=x.md()) for i, x in enumerate([a, b] * 6)]
        res = await asyncio.gather(*calls)
        assert len({r.order.id for r in res}) == 6  # r0..r5, each filled once
        for x in (a, b):  # both replicas derive the same state from the log
            acc = await get(x, acct)
            assert [(p.contract, p.quantity) for p in acc.positions] == [(AAPL_C, 6)]
            assert acc.cash == pytest.approx(10_000 - 6 * 520.65)
    finally:
        await stop_stack(a)
        await stop_stack(b)
        await pool2.close()


async def test_restart_derives_the_same_positions(pg_dsn: str) -> None:
    tape = Tape()
    tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    tape.set(MSFT_C, 8.00, 8.40, spot=395.0)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    s = await start_stack(pool, tape)
    subject = s.subject
    acct = await create(s)
    for r in (req(acct, "1", qty=3), req(acct, "2", qty=2, contract=MSFT_C), req(acct, "3", "SELL", qty=1)):
        await s.stub.PlaceOrder(r, metadata=s.md())
    await stop_stack(s)
    await pool.close()  # the process is gone; only PostgreSQL remains

    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    s = await start_stack(pool, tape)
    s.subject = subject
    try:
        a = await get(s, acct)
        by = {p.contract: p for p in a.positions}
        assert by[AAPL_C].quantity == 2 and by[AAPL_C].average_price == pytest.approx(5.20)
        assert by[AAPL_C].cost_basis == pytest.approx(2 * 520.65)
        assert by[MSFT_C].quantity == 2 and by[MSFT_C].average_price == pytest.approx(8.40)
        assert a.realized_pnl == pytest.approx(500 - 0.65 - 520.65)  # sold 1 at the bid 5.00
        assert a.cash == pytest.approx(100_000 - 3 * 520.65 - 2 * 840.65 + 499.35)
        # the retry of an order placed before the restart is still recognised
        r = (await s.stub.PlaceOrder(req(acct, "2", qty=2, contract=MSFT_C), metadata=s.md())).order
        assert r.replayed and r.seq == 2
    finally:
        await stop_stack(s)
        await pool.close()


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("outside_hours", "OUTSIDE_HOURS"),
        ("stale", "STALE_QUOTE"),
        ("no_quote", "NO_QUOTE"),
        ("no_ask", "NO_ASK"),
    ],
)
async def test_execution_refusals(stack: Stack, setup: str, reason: str) -> None:
    s = stack
    acct = await create(s)
    if setup == "outside_hours":
        s.tape.now = cv.ny_ns(SESSION, dt.time(16, 30))
        s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    elif setup == "stale":
        s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0, age_s=120)
    elif setup == "no_quote":
        s.tape.listed.add(AAPL_C)
    else:
        s.tape.set(AAPL_C, 5.00, float("nan"), spot=228.0)
    e = await refused(s, req(acct, "x"))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and details(e)["reason"] == reason
    assert not (await get(s, acct)).positions


async def test_unknown_and_expired_contracts_are_invalid(stack: Stack) -> None:
    s = stack
    acct = await create(s)
    e = await refused(s, req(acct, "u", contract="AAPL  260320C09990000"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(e)["reason"] == "UNKNOWN_CONTRACT" and details(e)["fields"] == ["contract"]
    expired = "AAPL  260227C00230000"  # expired at the 2026-02-27 close
    s.tape.set(expired, 1.0, 1.1, spot=228.0)
    e = await refused(s, req(acct, "e", contract=expired))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and details(e)["reason"] == "CONTRACT_EXPIRED"


def _bsm(mid: float, s: float, k: float, flag: str) -> tuple[float, float]:
    """(delta, vega per vol point) of a BSM contract expiring 2026-03-20 16:00 New York."""
    t = (cv.expiry_ns("2026-03-20") - Tape().now) / cv.NS_PER_YEAR
    sigma = implied_volatility(mid, s, k, t, RATE, 0.0, flag)
    return bsm.delta(flag, s, k, t, RATE, sigma, 0.0), bsm.vega(flag, s, k, t, RATE, sigma, 0.0)


async def _limits(s: Stack, acct: str, **kw: float | int | bool) -> None:
    await s.stub.SetLimits(pb.SetLimitsRequest(account_id=acct, limits=pb.RiskLimits(**kw)), metadata=s.md())


async def test_each_limit_refuses_with_its_name_and_numbers(stack: Stack) -> None:
    s = stack
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    s.tape.set(AAPL_P, 3.00, 3.20, spot=228.0)
    s.tape.set(MSFT_C, 8.00, 8.40, spot=395.0)
    s.tape.betas["AAPL"] = 1.25

    async def expect(acct: str, r: pb.PlaceOrderRequest, name: str, limit: float, value: float) -> None:
        e = await refused(s, r)
        d = details(e)
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
        assert d["reason"] == name.upper() and d["metadata"]["limit"] == name
        assert float(d["metadata"]["limit_value"]) == pytest.approx(limit)
        assert float(d["metadata"]["value"]) == pytest.approx(value, rel=1e-3)
        assert (e.details() or "").startswith(f"risk limit {name}: ")

    a = await create(s)
    await _limits(s, a, max_premium_per_trade=500)
    await expect(a, req(a, "1"), "max_premium_per_trade", 500, 520)

    a = await create(s)
    await _limits(s, a, max_total_premium=1000)
    await s.stub.PlaceOrder(req(a, "1"), metadata=s.md())
    await expect(a, req(a, "2"), "max_total_premium", 1000, 2 * 520.65)

    a = await create(s)
    await _limits(s, a, max_positions_per_underlying=1)
    await s.stub.PlaceOrder(req(a, "1"), metadata=s.md())
    await expect(a, req(a, "2", contract=AAPL_P), "max_positions_per_underlying", 1, 2)
    await s.stub.PlaceOrder(req(a, "3", contract=MSFT_C), metadata=s.md())  # another underlying is fine
    await s.stub.PlaceOrder(req(a, "4"), metadata=s.md())  # adding to an open position is fine

    a = await create(s)
    await _limits(s, a, max_open_positions=1)
    await s.stub.PlaceOrder(req(a, "1"), metadata=s.md())
    await expect(a, req(a, "2", contract=MSFT_C), "max_open_positions", 1, 2)

    a = await create(s)
    await _limits(s, a, max_daily_loss=50)
    await s.stub.PlaceOrder(req(a, "1", qty=2), metadata=s.md())
    s.tape.set(AAPL_C, 4.70, 4.90, spot=226.0)  # mid 4.80: unrealised 960 - 1041.30 = -81.30
    await expect(a, req(a, "2", contract=MSFT_C), "max_daily_loss", 50, 81.30)
    acc = await get(s, a)
    assert acc.buys_halted and any(x.name == "max_daily_loss" and x.breached for x in acc.limit_states)
    sold = (await s.stub.PlaceOrder(req(a, "3", "SELL"), metadata=s.md())).order  # closing still works
    assert sold.fill_price == 4.70
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)

    delta, vega = _bsm(5.10, 228.0, 230.0, "c")
    a = await create(s)
    await _limits(s, a, max_net_delta=5_000)
    call_bwd = delta * 100 * 228.0 * 1.25  # beta-weighted dollar delta of one call, about 10,900
    await expect(a, req(a, "1"), "max_net_delta", 5_000, call_bwd)
    await _limits(s, a)
    await s.stub.PlaceOrder(req(a, "2"), metadata=s.md())  # no limit: long one call
    await _limits(s, a, max_net_delta=5_000)
    await expect(a, req(a, "3"), "max_net_delta", 5_000, 2 * call_bwd)
    pdelta, _ = _bsm(3.10, 228.0, 220.0, "p")
    # the put leaves the net still beyond the limit but nearer zero: de-risking is never refused
    assert 5_000 < abs(call_bwd + pdelta * 100 * 228.0 * 1.25) < abs(call_bwd)
    await s.stub.PlaceOrder(req(a, "4", contract=AAPL_P), metadata=s.md())

    a = await create(s)
    await _limits(s, a, max_net_vega=10)
    await expect(a, req(a, "1"), "max_net_vega", 10, vega * 100)

    a = await create(s)
    await expect(a, req(a, "1", "SELL"), "no_naked_shorts", 0, 1)
    await _limits(s, a, allow_naked_shorts=True)
    o = (await s.stub.PlaceOrder(req(a, "2", "SELL"), metadata=s.md())).order
    assert o.fill_price == 5.00 and o.cash_flow == pytest.approx(500 - 0.65)
    acc = await get(s, a)
    assert acc.positions[0].quantity == -1 and acc.positions[0].liquidation_value == pytest.approx(-520.0)

    a = await create(s, 500.0)
    await expect(a, req(a, "1"), "cash", 500, 520.65)


async def test_another_subjects_account_is_invisible(stack: Stack) -> None:
    s = stack
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    acct = await create(s, subject="alice-" + s.subject)
    bob = s.md("bob-" + s.subject)
    for call in (
        s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=bob),
        s.stub.PlaceOrder(req(acct, "x"), metadata=bob),
        s.stub.ListOrders(pb.ListOrdersRequest(account_id=acct), metadata=bob),
        s.stub.SetLimits(pb.SetLimitsRequest(account_id=acct), metadata=bob),
        s.stub.SetFollowRule(pb.SetFollowRuleRequest(account_id=acct, rule=pb.FollowRule()), metadata=bob),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    call = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct), metadata=bob)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call.read()
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (await s.stub.ListAccounts(pb.ListAccountsRequest(), metadata=bob)).accounts
    mine = (await s.stub.ListAccounts(pb.ListAccountsRequest(), metadata=s.md("alice-" + s.subject))).accounts
    assert [m.id for m in mine] == [acct]
