"""BacktestService on a real PostgreSQL database: RunBacktest streams progress then the stored
result; GetBacktest returns the same report; ListBacktests lists it; bad input on every RPC is
INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from aiots.services.backtest.api import BacktestInputs, run_backtest
from aiots.services.backtest.service import SERVICE_NAME, BacktestServicer, add_to_server
from aiots.services.backtest.store import BacktestStore
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.v1 import backtest_pb2 as pb
from aiots.v1 import backtest_pb2_grpc

NVDA = "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"


@pytest.fixture
async def stub(pg_pool: asyncpg.Pool, shared_data: Path) -> AsyncIterator[backtest_pb2_grpc.BacktestServiceStub]:
    servicer = BacktestServicer(BacktestStore(pg_pool), [shared_data], local_subject="local", max_concurrent=1)
    server = await start_server([ServiceRegistration(SERVICE_NAME, add_to_server, servicer)], host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield backtest_pb2_grpc.BacktestServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


async def test_run_streams_progress_then_the_stored_result(
    stub: backtest_pb2_grpc.BacktestServiceStub, shared_data: Path
) -> None:
    req = pb.RunBacktestRequest(bars=[NVDA], seed=5, to_date="2024-03-08")
    msgs = [m async for m in stub.RunBacktest(req)]
    kinds = [m.WhichOneof("event") for m in msgs]
    assert kinds[-1] == "result" and kinds.count("result") == 1 and kinds.count("progress") >= 3
    stages = [m.progress.stage for m in msgs if m.WhichOneof("event") == "progress"]
    assert stages[0] == "loading" and "strategies" in stages and "null model" in stages
    run = msgs[-1].result
    assert len(run.id) == 26
    got = MessageToDict(run.report)
    # the same as the library call on the same inputs (Struct numbers are floats: compare as JSON numbers)
    direct = run_backtest(BacktestInputs(bars=(str(shared_data / NVDA),), seed=5, date_to=dt.date(2024, 3, 8)))
    assert got["summary"] == direct["summary"] and got["null_model"] == direct["null_model"]
    assert len(got["trades"]) == len(direct["trades"]) == run.trades
    again = (await stub.GetBacktest(pb.GetBacktestRequest(id=run.id))).run
    assert MessageToDict(again.report) == got and again.id == run.id
    listed = (await stub.ListBacktests(pb.ListBacktestsRequest(limit=5))).runs
    assert run.id in [r.id for r in listed] and not listed[0].HasField("report")


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (pb.RunBacktestRequest(), "bars"),
        (pb.RunBacktestRequest(bars=["no/such.csv"]), "bars[0]"),
        (pb.RunBacktestRequest(bars=["/etc/passwd"]), "bars[0]"),
        (pb.RunBacktestRequest(bars=["../../../etc/passwd"]), "bars[0]"),
        (pb.RunBacktestRequest(bars=[NVDA], option_quotes=["x.csv"]), "option_quotes[0]"),
        (pb.RunBacktestRequest(bars=[NVDA], symbols=["nv da"]), "symbols[0]"),
        (pb.RunBacktestRequest(bars=[NVDA], symbols=["SPY"]), "symbols"),
        (pb.RunBacktestRequest(bars=[NVDA], from_date="2024-13-01"), "from_date"),
        (pb.RunBacktestRequest(bars=[NVDA], from_date="2024-03-10", to_date="2024-03-01"), "from_date"),
        (pb.RunBacktestRequest(bars=[NVDA], config_yaml="cooldown_bars: -3"), "config_yaml"),
        (pb.RunBacktestRequest(bars=[NVDA], config_yaml="[1, 2"), "config_yaml"),
        (pb.RunBacktestRequest(bars=["options/A_options_eod_2016-01-05.csv"]), "bars[0]"),  # not bars: names the column
    ],
)
async def test_run_bad_input_names_the_field(
    stub: backtest_pb2_grpc.BacktestServiceStub, req: pb.RunBacktestRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in stub.RunBacktest(req):
            pass
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(f"{field}:")


async def test_get_and_list_bad_input(stub: backtest_pb2_grpc.BacktestServiceStub) -> None:
    for req, field in ((pb.GetBacktestRequest(), "id"), (pb.GetBacktestRequest(id="x/../y"), "id")):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.GetBacktest(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith(f"{field}:")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.GetBacktest(pb.GetBacktestRequest(id="01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.ListBacktests(pb.ListBacktestsRequest(limit=1000))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.details().startswith("limit:")
