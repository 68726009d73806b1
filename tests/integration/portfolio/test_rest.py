"""The issue's "done when", through REST on the real gateway (Envoy: JWT, roles, transcoding) in
front of the real PortfolioService on PostgreSQL and a scripted quote tape: open an account, buy
at the ask, retry without a second fill, watch P&L move, be refused by a limit that names itself,
sell to realise P&L; a viewer reads but cannot trade; another subject gets 404.

Oracle: the tape's prices (buy at the ask, sell at the bid, $0.65 per contract per fill)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.common.settings import Settings
from tests.integration.gateway.ports import free_port, gateway_settings

from .conftest import AAPL_C, Stack, Tape, start_stack, stop_stack


class Rest:
    def __init__(self, session: aiohttp.ClientSession, url: str, settings: Settings) -> None:
        self.session, self.url, self.settings = session, url, settings

    def auth(self, role: str, subject: str) -> dict[str, str]:
        tok = issue_token(self.settings.gateway, role=role, subject=subject, ttl_s=600)
        return {"Authorization": f"Bearer {tok}"}

    async def call(self, method: str, path: str, who: dict[str, str], body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, headers=who, json=body) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)


@pytest.fixture
async def rest(pg_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[tuple[Rest, Stack]]:
    tape = Tape()
    stack = await start_stack(pg_pool, tape)
    gw = gateway_settings(tmp_path, health_check_interval_s=0.3)
    dead = {n: {"port": free_port()} for n in ("cache", "ingestion", "analytics", "signals")}
    settings = Settings(gateway=gw, portfolio={"port": stack.server.port}, **dead)
    gateway = Gateway(settings, config_dir=tmp_path / "envoy")
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Rest(session, f"http://127.0.0.1:{settings.gateway.port}/api/v1/portfolio", settings), stack
    finally:
        await gateway.stop()
        await stop_stack(stack)


async def test_trader_flow_through_rest(rest: tuple[Rest, Stack]) -> None:
    r, stack = rest
    stack.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    alice = r.auth("trader", f"alice-{stack.subject}")

    code, body = await r.call("POST", "/accounts", alice, {"name": "rest", "cash": 10_000})
    assert code == 200, body
    acct = body["account"]["id"]
    buy = {"client_order_id": "r1", "contract": AAPL_C, "side": "BUY", "quantity": 2}
    code, first = await r.call("POST", f"/accounts/{acct}/orders", alice, buy)
    assert code == 200, first
    assert (first["order"]["fill_price"], first["order"]["fees"], first["order"]["status"]) == (5.20, 1.30, "FILLED")
    code, again = await r.call("POST", f"/accounts/{acct}/orders", alice, buy)
    assert code == 200 and again["order"]["id"] == first["order"]["id"] and again["order"]["replayed"] is True

    stack.tape.set(AAPL_C, 5.60, 5.80, spot=231.0)
    code, body = await r.call("GET", f"/accounts/{acct}", alice)
    a = body["account"]
    assert a["cash"] == pytest.approx(10_000 - 1_041.30)  # one fill
    assert a["positions"][0]["quantity"] == "2" and a["positions"][0]["mark"] == pytest.approx(5.70)
    assert a["unrealized_pnl"] == pytest.approx(1_140 - 1_041.30)
    assert a["greeks"]["dollar_delta"] > 0 and a["greeks"]["theta"] < 0

    code, body = await r.call("PUT", f"/accounts/{acct}/limits", alice, {"max_premium_per_trade": 100})
    assert code == 200 and body["account"]["limits"]["max_premium_per_trade"] == 100
    code, err = await r.call("POST", f"/accounts/{acct}/orders", alice, {**buy, "client_order_id": "r2"})
    assert code == 400 and err["code"] == 9  # FAILED_PRECONDITION
    info = next(d for d in err["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "MAX_PREMIUM_PER_TRADE" and info["metadata"]["limit"] == "max_premium_per_trade"
    assert float(info["metadata"]["value"]) == pytest.approx(2 * 580.0)

    sell = {"client_order_id": "r3", "contract": AAPL_C, "side": "SELL", "quantity": 2}
    code, body = await r.call("POST", f"/accounts/{acct}/orders", alice, sell)
    assert code == 200 and body["order"]["realized_pnl"] == pytest.approx((5.60 - 5.20) * 200 - 2.60)

    # the watch stream as NDJSON, replayed from the start
    async with r.session.get(f"{r.url}/accounts/{acct}/watch?since=0", headers=alice) as resp:
        assert resp.status == 200
        events = []
        async for line in resp.content:
            if line.strip():
                events.append(json.loads(line))
            if len(events) == 4:
                break
    assert [next(k for k in ("fill", "limit", "mark") if k in e) for e in events] == ["fill", "limit", "fill", "mark"]

    # a viewer reads but cannot trade; another subject sees nothing
    viewer = r.auth("viewer", f"alice-{stack.subject}")
    code, _ = await r.call("GET", f"/accounts/{acct}", viewer)
    assert code == 200
    code, _ = await r.call("POST", f"/accounts/{acct}/orders", viewer, {**buy, "client_order_id": "v1"})
    assert code == 403
    bob = r.auth("trader", f"bob-{stack.subject}")
    code, body = await r.call("GET", f"/accounts/{acct}", bob)
    assert code == 404, body
    code, body = await r.call("GET", "/accounts", bob)
    assert code == 200 and not body.get("accounts")

    # bad input names the field
    code, err = await r.call(
        "POST", f"/accounts/{acct}/orders", alice, {**buy, "client_order_id": "b", "quantity": 1.5}
    )
    assert code == 400 and err["code"] == 3
    bad = next(d for d in err["details"] if d["@type"].endswith("BadRequest"))
    assert bad["field_violations"][0]["field"] == "quantity"
