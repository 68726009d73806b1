"""WatchAccount cut by the service's graceful stop: the stream's last message carries ``error``
(UNAVAILABLE) naming ``since`` = the last event seq the client received, and resuming with it
delivers exactly what came later. Oracle: the seqs the test's own orders produced (1 fill each)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aiots.v1 import portfolio_pb2 as pb
from tests.integration.portfolio.conftest import AAPL_C, Stack
from tests.integration.portfolio.test_flow import create, order

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_watch_cut_by_shutdown_names_the_last_seq(stack: Stack) -> None:
    s = stack
    acct = await create(s)
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    await order(s, acct, "b1", "BUY", 1)  # seq 1
    await order(s, acct, "s1", "SELL", 1)  # seq 2
    call = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct, since="0"), metadata=s.md())
    got: list[pb.WatchAccountResponse] = []
    async with asyncio.timeout(20):
        async for m in call:
            got.append(m)
            if m.WhichOneof("event") == "mark":
                break
        await s.server.set_serving(False)  # the first step of the portfolio service's stop()
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            async for m in call:
                got.append(m)
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [(m.seq, m.WhichOneof("event")) for m in got[:3]] == [(1, "fill"), (2, "fill"), (2, "mark")]
    last = got[-1]
    assert last.WhichOneof("event") == "error" and last.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert last.error.message == "the server is shutting down; resume with since=2"
    assert ei.value.details() == last.error.message

    # the service back (a restart): resuming from that point gives exactly what came later
    await s.server.set_serving(True)
    await order(s, acct, "b2", "BUY", 1)  # seq 3
    resumed = s.stub.WatchAccount(pb.WatchAccountRequest(account_id=acct, since="2"), metadata=s.md())
    async with asyncio.timeout(20):
        first = await resumed.read()
    resumed.cancel()
    assert (first.seq, first.WhichOneof("event"), first.fill.client_order_id) == (3, "fill", "b2")
