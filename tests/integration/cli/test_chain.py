"""`aiots chain` against a real grpc.aio AnalyticsService (a fixed two-contract chain served by test
scaffolding): JSON equals what was served, the table shows it, errors are one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiots.services.common.errors import NotFound
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.v1 import analytics_pb2, analytics_pb2_grpc, common_pb2

pytestmark = pytest.mark.integration
AIOTS = Path(sys.executable).parent / "aiots"


class Chain(analytics_pb2_grpc.AnalyticsServiceServicer):
    async def GetOptionChain(self, request: Any, context: Any) -> Any:
        if request.symbol != "AAPL":
            raise NotFound(f"no option chain for {request.symbol!r}; known: AAPL")
        quotes = []
        for right, occ in ((common_pb2.OPTION_RIGHT_CALL, "AAPL  250117C00150000"),
                           (common_pb2.OPTION_RIGHT_PUT, "AAPL  250117P00150000")):  # fmt: skip
            quotes.append(
                analytics_pb2.OptionQuote(
                    contract=common_pb2.OptionContract(
                        occ_symbol=occ,
                        underlying="AAPL",
                        strike=150.0,
                        expiry="2025-01-17",
                        right=right,
                        multiplier=100,
                    ),
                    bid=3.1,
                    ask=3.3,
                    mid=3.2,
                    last=3.25,
                    volume=1200,
                    open_interest=5400,
                    iv=0.2512,
                    greeks=common_pb2.Greeks(delta=0.52, gamma=0.031, theta=-0.041, vega=0.18),
                )
            )
        return analytics_pb2.GetOptionChainResponse(symbol="AAPL", underlying_price=151.25, contracts=quotes)


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    gs = await start_server(
        [ServiceRegistration("aiots.v1.AnalyticsService", analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
                             Chain())],
        host="127.0.0.1",
        port=0,
    )  # fmt: skip
    yield gs
    await gs.stop(0.5)


async def _aiots(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [str(AIOTS), *args], capture_output=True, text=True, timeout=60)


async def test_chain_json_table_and_errors(server: GrpcServer) -> None:
    target = f"127.0.0.1:{server.port}"
    out = await _aiots("chain", "aapl", "--target", target, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["symbol"] == "AAPL" and doc["underlying_price"] == 151.25
    assert [c["contract"]["occ_symbol"] for c in doc["contracts"]] == ["AAPL  250117C00150000", "AAPL  250117P00150000"]
    assert doc["contracts"][0]["iv"] == 0.2512 and doc["contracts"][1]["contract"]["right"] == "OPTION_RIGHT_PUT"

    table = await _aiots("chain", "AAPL", "--target", target)
    assert table.returncode == 0, table.stderr
    assert "151.25" in table.stdout and "25.1%" in table.stdout and "150.00" in table.stdout

    missing = await _aiots("chain", "ZZZZ", "--target", target)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["Error: NOT_FOUND: no option chain for 'ZZZZ'; known: AAPL"]

    down = await _aiots("chain", "AAPL", "--target", "127.0.0.1:1")
    assert down.returncode == 1 and "unreachable" in down.stderr and "Traceback" not in down.stderr
