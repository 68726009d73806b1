"""A PortfolioService on a real PostgreSQL database, a scripted quote tape and a scripted clock.

The tape replaces the live market (bus quotes, cache prices, stored daily bars) with quotes the
test sets; everything else is the production code: servicer, domain, store, execution model.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from aiots.core import conventions as cv
from aiots.core.execution import ExecutionModel
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.portfolio.book import Portfolio, PortfolioConfig
from aiots.services.portfolio.models import LiveQuote
from aiots.services.portfolio.service import SERVICE_NAME, PortfolioServicer, add_to_server
from aiots.services.portfolio.store import PortfolioStore
from aiots.services.portfolio.valuation import Greeker
from aiots.v1 import portfolio_pb2_grpc

SESSION = dt.date(2026, 3, 2)  # a Monday, a regular NYSE session
T0 = cv.ny_ns(SESSION, dt.time(10, 0))
AAPL_C = "AAPL  260320C00230000"  # American call, expires 2026-03-20
AAPL_P = "AAPL  260320P00220000"
MSFT_C = "MSFT  260320C00400000"
SPXW_C = "SPXW  260320C05900000"  # European (cash-settled index)
RATE = 0.045


@dataclass
class Tape:
    """Scripted market: quotes by contract, listed contracts, betas; ``now`` is the clock."""

    now: int = T0
    quotes: dict[str, LiveQuote] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    betas: dict[str, float] = field(default_factory=dict)

    def set(self, occ: str, bid: float, ask: float, spot: float, age_s: float = 1.0) -> None:
        self.quotes[occ] = LiveQuote(bid, ask, self.now - int(age_s * cv.NS_PER_S), underlying_price=spot)
        self.listed.add(occ)

    async def quote(self, occ: str) -> LiveQuote | None:
        return self.quotes.get(occ)

    async def contract_known(self, occ: str) -> bool:
        return occ in self.listed

    async def beta(self, underlying: str, now_ns: int) -> float:
        return self.betas.get(underlying, 1.0)

    def clock(self) -> int:
        return self.now


@dataclass
class Stack:
    tape: Tape
    portfolio: Portfolio
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: portfolio_pb2_grpc.PortfolioServiceStub
    subject: str

    def md(self, subject: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("x-aiots-subject", subject or self.subject),)


async def start_stack(pool: asyncpg.Pool, tape: Tape, *, mark_interval_s: float = 0.2) -> Stack:
    portfolio = Portfolio(
        PortfolioStore(pool),
        tape,
        ExecutionModel(),
        Greeker(rate=RATE),
        config=PortfolioConfig(mark_interval_s=mark_interval_s, poll_interval_s=0.05),
        clock=tape.clock,
    )
    servicer = PortfolioServicer(portfolio, local_subject="local", signal_lookup=PortfolioStore(pool).signal_payload)
    server = await start_server([ServiceRegistration(SERVICE_NAME, add_to_server, servicer)], host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    return Stack(tape, portfolio, server, channel, stub, f"user-{uuid.uuid4().hex[:8]}")


async def stop_stack(s: Stack) -> None:
    await s.channel.close()
    await s.server.stop(0)


@pytest.fixture
async def stack(pg_pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    tape = Tape()
    s = await start_stack(pg_pool, tape)
    try:
        yield s
    finally:
        await stop_stack(s)


def details(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    """{'reason', 'metadata', 'fields'} of the error's google.rpc details."""
    out: dict[str, Any] = {"reason": "", "metadata": {}, "fields": []}
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return out
    st = status_pb2.Status.FromString(raw)
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            out["reason"], out["metadata"] = info.reason, dict(info.metadata)
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            out["fields"] = [v.field for v in bad.field_violations]
    return out
