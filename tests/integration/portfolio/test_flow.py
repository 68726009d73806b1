"""The trader's flow on a scripted quote tape: open an account, buy at the ask, watch marks and
P&L move, sell at the bid to realise P&L; Greeks per position and in total.

Oracles: fills, cash and P&L are hand-computed from the tape (buy at the ask, sell at the bid,
$0.65 per contract per fill); Greeks come from py_vollib (Black-Scholes-Merton, analytical), with
the IV solved by py_vollib from the mid and the time to expiry computed here with zoneinfo.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from zoneinfo import ZoneInfo

import grpc
import pytest
from py_vollib.black_scholes_merton.greeks import analytical as bsm
from py_vollib.black_scholes_merton.implied_volatility import implied_volatility

from aiots.v1 import portfolio_pb2 as pb

from .conftest import AAPL_C, RATE, SPXW_C, Stack, details

NY = ZoneInfo("America/New_York")


def years_to_expiry(expiry: dt.date) -> float:
    """ACT/365 from the tape's clock (2026-03-02 10:00 New York) to 16:00 New York on expiry
    (elapsed time: through UTC, as same-zone datetime subtraction ignores the DST change)."""
    start = dt.datetime(2026, 3, 2, 10, 0, tzinfo=NY).astimezone(dt.UTC)
    end = dt.datetime(expiry.year, expiry.month, expiry.day, 16, 0, tzinfo=NY).astimezone(dt.UTC)
    return (end - start).total_seconds() / (365 * 86400)


def oracle(mid: float, s: float, k: float, t: float, flag: str) -> dict[str, float]:
    sigma = implied_volatility(mid, s, k, t, RATE, 0.0, flag)
    return {
        "iv": sigma,
        "delta": bsm.delta(flag, s, k, t, RATE, sigma, 0.0),
        "gamma": bsm.gamma(flag, s, k, t, RATE, sigma, 0.0),
        "vega": bsm.vega(flag, s, k, t, RATE, sigma, 0.0),  # per vol point
        "theta": bsm.theta(flag, s, k, t, RATE, sigma, 0.0),  # per calendar day
    }


async def create(s: Stack, cash: float = 10_000.0) -> str:
    r = await s.stub.CreateAccount(pb.CreateAccountRequest(name="paper", cash=cash), metadata=s.md())
    assert r.account.cash == cash and r.account.equity == cash and not r.account.positions
    return r.account.id


async def order(s: Stack, acct: str, cid: str, side: str, qty: float, contract: str = AAPL_C) -> pb.Order:
    r = await s.stub.PlaceOrder(
        pb.PlaceOrderRequest(account_id=acct, client_order_id=cid, contract=contract, side=side, quantity=qty),
        metadata=s.md(),
    )
    return r.order


async def test_buy_at_ask_watch_pnl_sell_at_bid(stack: Stack) -> None:
    s = stack
    acct = await create(s)
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)

    o = await order(s, acct, "b1", "BUY", 2)
    assert (o.status, o.side, o.quantity, o.fill_price, o.fees) == ("FILLED", "BUY", 2, 5.20, 1.30)
    assert o.cash_flow == pytest.approx(-(5.20 * 200 + 1.30))
    assert (o.bid, o.ask) == (5.00, 5.20)

    a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
    assert a.cash == pytest.approx(10_000 - 1_040 - 1.30)
    (p,) = a.positions
    assert (p.contract, p.quantity, p.exercise_style) == (AAPL_C, 2, "american")
    assert p.average_price == pytest.approx(5.20)
    assert p.cost_basis == pytest.approx(1_041.30)
    assert p.mark == pytest.approx(5.10)  # mid
    assert p.market_value == pytest.approx(1_020.0)
    assert p.liquidation_value == pytest.approx(1_000.0)  # at the bid
    assert p.unrealized_pnl == pytest.approx(1_020.0 - 1_041.30)
    assert a.equity == pytest.approx(a.cash + 1_020.0)

    # the quote moves: marks and P&L follow
    s.tape.set(AAPL_C, 5.60, 5.80, spot=231.0)
    a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
    assert a.positions[0].mark == pytest.approx(5.70)
    assert a.unrealized_pnl == pytest.approx(1_140.0 - 1_041.30)
    assert a.day_pnl == pytest.approx(1_140.0 - 1_041.30)

    o2 = await order(s, acct, "s1", "SELL", 2)
    assert (o2.fill_price, o2.fees) == (5.60, 1.30)
    assert o2.realized_pnl == pytest.approx((5.60 - 5.20) * 200 - 2.60)  # 77.40, fees of both legs
    a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
    assert not a.positions
    assert a.realized_pnl == pytest.approx(77.40)
    assert a.cash == pytest.approx(10_077.40)
    assert a.equity == pytest.approx(10_077.40)

    orders = (await s.stub.ListOrders(pb.ListOrdersRequest(account_id=acct), metadata=s.md())).orders
    assert [(x.client_order_id, x.side) for x in orders] == [("s1", "SELL"), ("b1", "BUY")]  # newest first


async def test_partial_close_and_limit_orders(stack: Stack) -> None:
    s = stack
    acct = await create(s)
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    await order(s, acct, "b1", "BUY", 3)
    s.tape.set(AAPL_C, 6.00, 6.30, spot=232.0)
    await order(s, acct, "b2", "BUY", 1)  # average (3 x 5.20 + 6.30) / 4 = 5.475
    o = await order(s, acct, "s1", "SELL", 2)
    basis = 3 * 520 + 3 * 0.65 + 630 + 0.65
    assert o.realized_pnl == pytest.approx(2 * 600 - 1.30 - basis / 2)
    a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
    (p,) = a.positions
    assert p.quantity == 2 and p.average_price == pytest.approx(5.475) and p.cost_basis == pytest.approx(basis / 2)

    # a buy limit below the ask is not marketable: refused (paper orders never rest)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await s.stub.PlaceOrder(
            pb.PlaceOrderRequest(
                account_id=acct, client_order_id="l1", contract=AAPL_C, side="BUY", quantity=1, limit_price=6.20
            ),
            metadata=s.md(),
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(e.value)["reason"] == "LIMIT_NOT_MARKETABLE"
    r = await s.stub.PlaceOrder(
        pb.PlaceOrderRequest(
            account_id=acct, client_order_id="l2", contract=AAPL_C, side="BUY", quantity=1, limit_price=6.35
        ),
        metadata=s.md(),
    )
    assert r.order.fill_price == 6.30 and r.order.limit_price == 6.35  # a marketable limit fills at the ask


async def test_greeks_per_position_and_total_match_py_vollib(stack: Stack) -> None:
    s = stack
    s.tape.betas["AAPL"] = 1.2
    acct = await create(s, 1_000_000.0)
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    s.tape.set(SPXW_C, 98.0, 100.0, spot=5880.0)
    await order(s, acct, "a", "BUY", 3, AAPL_C)
    await order(s, acct, "x", "BUY", 1, SPXW_C)
    a = (await s.stub.GetAccount(pb.GetAccountRequest(account_id=acct), metadata=s.md())).account
    by = {p.contract: p for p in a.positions}
    t = years_to_expiry(dt.date(2026, 3, 20))
    total = {"dollar_delta": 0.0, "gamma_1pct": 0.0, "vega": 0.0, "theta": 0.0, "bwd": 0.0}
    # An American call without dividends is worth the European one (no early exercise): the BSM
    # oracle applies to both; the SPXW contract is European by its root.
    for occ, qty, spot, strike, mid, beta, style in (
        (AAPL_C, 3, 228.0, 230.0, 5.10, 1.2, "american"),
        (SPXW_C, 1, 5880.0, 5900.0, 99.0, 1.0, "european"),
    ):
        p = by[occ]
        assert p.exercise_style == style
        g = oracle(mid, spot, strike, t, "c")
        assert p.iv == pytest.approx(g["iv"], rel=1e-4)
        dd = g["delta"] * qty * 100 * spot
        gm = g["gamma"] * qty * 100 * spot * 0.01 * spot
        assert p.greeks.delta_shares == pytest.approx(g["delta"] * qty * 100, rel=1e-3)
        assert p.greeks.dollar_delta == pytest.approx(dd, rel=1e-3)
        assert p.greeks.gamma_1pct == pytest.approx(gm, rel=2e-3)
        assert p.greeks.vega == pytest.approx(g["vega"] * qty * 100, rel=1e-3)
        assert p.greeks.theta == pytest.approx(g["theta"] * qty * 100, rel=2e-3)
        assert p.greeks.beta_weighted_delta == pytest.approx(dd * beta, rel=1e-3)
        total["dollar_delta"] += dd
        total["gamma_1pct"] += gm
        total["vega"] += g["vega"] * qty * 100
        total["theta"] += g["theta"] * qty * 100
        total["bwd"] += dd * beta
    assert a.greeks.dollar_delta == pytest.approx(total["dollar_delta"], rel=1e-3)
    assert a.greeks.gamma_1pct == pytest.approx(total["gamma_1pct"], rel=2e-3)
    assert a.greeks.vega == pytest.approx(total["vega"], rel=1e-3)
    assert a.greeks.theta == pytest.approx(total["theta"], rel=2e-3)
    assert a.greeks.beta_weighted_delta == pytest.approx(total["bwd"], rel=1e-3)
    und = {u.underlying: u for u in a.by_underlying}
    assert set(und) == {"AAPL", "SPX"} and und["AAPL"].beta == 1.2 and und["AAPL"].open_positions == 1
    assert und["SPX"].greeks.vega == pytest.approx(by[SPXW_C].greeks.vega)


async def test_watch_streams_fills_limits_and_marks_and_resumes(stack: Stack) -> None:
    s = stack
    acct = await create(s)
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    await order(s, acct, "b1", "BUY", 1)
    await s.stub.SetLimits(
        pb.SetLimitsRequest(account_id=acct, limits=pb.RiskLimits(max_premium_per_trade=100.0)), metadata=s.md()
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await order(s, acct, "b2", "BUY", 1)  # 520 > 100: refused, recorded as a limit event
    await order(s, acct, "s1", "SELL", 1)  # closing is never refused by the premium limit

    call = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct, since="0"), metadata=s.md())
    got: list[pb.WatchAccountResponse] = []
    async with asyncio.timeout(20):
        async for m in call:
            got.append(m)
            if m.WhichOneof("event") == "mark":
                break
    call.cancel()
    kinds = [(m.seq, m.WhichOneof("event")) for m in got]
    assert kinds == [(1, "fill"), (2, "limit"), (3, "fill"), (3, "mark")]
    assert got[0].fill.client_order_id == "b1" and got[0].fill.fill_price == 5.20
    assert got[1].limit.name == "max_premium_per_trade" and got[1].limit.value == pytest.approx(520.0)
    assert got[2].fill.realized_pnl == pytest.approx((5.00 - 5.20) * 100 - 1.30)
    assert got[3].mark.realized_pnl == pytest.approx(-21.30)

    # resume after seq 2: only what came later
    call = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct, since="2"), metadata=s.md())
    async with asyncio.timeout(20):
        first = await call.read()
    call.cancel()
    assert first.seq == 3 and first.fill.client_order_id == "s1"

    # live: a new fill arrives on an open stream (limits cleared: PUT replaces them all)
    await s.stub.SetLimits(pb.SetLimitsRequest(account_id=acct, limits=pb.RiskLimits()), metadata=s.md())
    # since=3: the fill placed right after opening is delivered whether it lands before or after
    # the stream has registered (without it, a fill racing the registration was never seen)
    call = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct, since="3"), metadata=s.md())
    await order(s, acct, "b3", "BUY", 1)
    async with asyncio.timeout(20):
        async for m in call:
            if m.WhichOneof("event") == "fill":
                assert m.seq == 4 and m.fill.client_order_id == "b3"
                break
    call.cancel()
    assert math.isfinite(got[3].mark.equity)
