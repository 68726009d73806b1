"""IngestionService through a real gRPC channel (typed stubs) against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import grpc
import numpy as np
import pandas as pd
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.app import IngestionApp, create_app
from aiots.v1 import common_pb2, ingestion_pb2, ingestion_pb2_grpc


@pytest.fixture
async def svc(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ingestion_pb2_grpc.IngestionServiceStub, IngestionApp]]:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    dsn = make_database(True)
    settings = Settings(
        database_url=dsn,
        symbols=["AAPL", "GOOGL"],
        ingestion={
            "spill_dir": tmp_path / "spill",
            "autostart": False,
            "simulator_speed": 20.0,
            "flush_interval_s": 0.02,
            "history_sessions": 30,
        },
    )
    rt = Runtime(settings=settings, bus=InProcessBus())
    app = await create_app(rt, port=0)
    await app.start()
    assert app.manager is not None
    await app.manager.seed()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel), app
    finally:
        await channel.close()
        await app.stop()


async def _bad(call: Any, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        r = call()
        if hasattr(r, "__aiter__"):
            async for _ in r:
                pass
        else:
            await r
    assert ei.value.code() == code, ei.value.details()
    return str(ei.value.details())


async def test_collection_lifecycle_and_status(svc: Any) -> None:
    stub, _app = svc
    req = ingestion_pb2.StartCollectionRequest(symbols=["AAPL", "GOOGL"], schemas=["trades", "tbbo"])
    r1 = await stub.StartCollection(req)
    assert r1.started and r1.source == ingestion_pb2.DATA_SOURCE_SIMULATOR and r1.job_id
    r2 = await stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["aapl"]))
    assert not r2.started and r2.job_id == r1.job_id  # idempotent
    for _ in range(100):
        st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
        if any(s.schema == "trades" and s.records > 0 for s in st.streams):
            break
        await asyncio.sleep(0.1)
    assert st.running and {s.symbol for s in st.streams if s.schema == "trades"} == {"AAPL", "GOOGL"}
    # the simulator says where its market stands; its time lies in an XNYS session (exchange-calendars)
    clock = st.market_clock
    assert clock.mode in ("live", "replay", "closed") and clock.note
    xnys = xcals.get_calendar("XNYS", start="2020-01-01")
    day = dt.date.fromisoformat(clock.session_date)
    assert xnys.is_session(pd.Timestamp(day))
    local = dt.datetime.fromtimestamp(clock.market_time.ToNanoseconds() / 1e9, ZoneInfo("America/New_York"))
    assert local.date() == day and dt.time(4) <= local.time() < dt.time(20)
    # lag is measured on the simulated market's clock (a replayed session is not a day behind)
    assert all(0 <= s.lag_seconds < 600 for s in st.streams)
    stop = await stub.StopCollection(ingestion_pb2.StopCollectionRequest(all=True))
    assert list(stop.job_ids) == [r1.job_id]
    st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
    assert not st.running
    t = await stub.GetTrades(ingestion_pb2.GetTradesRequest(symbol="AAPL", limit=5))
    assert 0 < len(t.trades) <= 5 and all(x.price > 0 for x in t.trades)
    assert [x.ts.ToNanoseconds() for x in t.trades] == sorted(x.ts.ToNanoseconds() for x in t.trades)


async def test_bars_rollups_consistent_with_1m(svc: Any) -> None:
    stub, _ = svc
    m1 = (await stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", interval="1m", limit=100_000))).bars
    # 30 seeded sessions, each with its regular minutes per exchange-calendars (210 on an early close)
    xnys = xcals.get_calendar("XNYS", start="2020-01-01")
    ny = ZoneInfo("America/New_York")
    per_day: dict[dt.date, int] = {}
    for b in m1:
        day = dt.datetime.fromtimestamp(b.ts.seconds, ny).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert len(per_day) == 30
    for day, n in per_day.items():
        row = xnys.schedule.loc[pd.Timestamp(day)]
        assert n == (row["close"] - row["open"]).total_seconds() / 60
    ts = np.array([b.ts.ToNanoseconds() for b in m1])
    vol = np.array([b.volume for b in m1])
    for interval, width in (("5m", 300), ("15m", 900), ("1h", 3600)):
        bars = (await stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", interval=interval, limit=100_000))).bars
        for b in bars[-5:]:
            t0 = b.ts.ToNanoseconds()
            inside = (ts >= t0) & (ts < t0 + width * 10**9)
            assert b.volume == pytest.approx(vol[inside].sum())
            assert b.high == pytest.approx(max(x.high for x, k in zip(m1, inside, strict=True) if k))
    d = (await stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="GOOGL", interval="1d", limit=300))).bars
    assert len(d) == 252
    last = (await stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", interval="1m", limit=10))).bars
    assert [b.ts for b in last] == [b.ts for b in m1[-10:]]


async def test_instruments_and_chain_definitions(svc: Any) -> None:
    stub, _app = svc
    await stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["AAPL"]))
    for _ in range(100):
        defs = await stub.GetOptionChainDefinitions(ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="AAPL"))
        if defs.contracts:
            break
        await asyncio.sleep(0.1)
    await stub.StopCollection(ingestion_pb2.StopCollectionRequest(symbols=["AAPL"]))
    c = defs.contracts
    assert len(c) > 100 and all(len(x.occ_symbol) == 21 and x.underlying == "AAPL" and x.multiplier == 100 for x in c)
    keys = [(x.expiry, x.strike, x.right) for x in c]
    assert keys == sorted(keys)
    one = await stub.GetOptionChainDefinitions(
        ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="AAPL", expiry=c[0].expiry)
    )
    assert {x.expiry for x in one.contracts} == {c[0].expiry}
    page1 = await stub.ListInstruments(
        ingestion_pb2.ListInstrumentsRequest(
            underlying="AAPL", kind=common_pb2.INSTRUMENT_KIND_OPTION, page=common_pb2.PageRequest(page_size=50)
        )
    )
    assert len(page1.instruments) == 50 and page1.page.next_page_token
    page2 = await stub.ListInstruments(
        ingestion_pb2.ListInstrumentsRequest(
            underlying="AAPL",
            kind=common_pb2.INSTRUMENT_KIND_OPTION,
            page=common_pb2.PageRequest(page_size=50, page_token=page1.page.next_page_token),
        )
    )
    assert page2.instruments[0].symbol > page1.instruments[-1].symbol
    stocks = await stub.ListInstruments(ingestion_pb2.ListInstrumentsRequest(kind=common_pb2.INSTRUMENT_KIND_STOCK))
    assert {i.symbol for i in stocks.instruments} >= {"AAPL", "GOOGL"}


async def test_bad_input_per_rpc(svc: Any) -> None:
    stub, _ = svc
    msg = await _bad(lambda: stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["ZZZZ"])))
    assert "ZZZZ" in msg and "AAPL" in msg
    msg = await _bad(lambda: stub.StartCollection(ingestion_pb2.StartCollectionRequest(schemas=["mbo"])))
    assert "mbo" in msg and "tbbo" in msg
    await _bad(
        lambda: stub.StartCollection(ingestion_pb2.StartCollectionRequest(source=ingestion_pb2.DATA_SOURCE_LIVE)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _bad(lambda: stub.StopCollection(ingestion_pb2.StopCollectionRequest(symbols=["NOPE"])))
    await _bad(lambda: stub.Backfill(ingestion_pb2.BackfillRequest(symbols=["AAPL"])))
    await _bad(
        lambda: stub.Backfill(
            ingestion_pb2.BackfillRequest(symbols=["AAPL"], start=Timestamp(seconds=2), end=Timestamp(seconds=1))
        )
    )
    await _bad(
        lambda: stub.Backfill(
            ingestion_pb2.BackfillRequest(symbols=["AAPL"], start=Timestamp(seconds=1), end=Timestamp(seconds=2))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _bad(lambda: stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", interval="7m")))
    await _bad(lambda: stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="", interval="1m")))
    await _bad(lambda: stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", limit=1_000_000)))
    await _bad(lambda: stub.GetTrades(ingestion_pb2.GetTradesRequest(symbol="NOT A TICKER")))
    await _bad(lambda: stub.GetTrades(ingestion_pb2.GetTradesRequest(symbol="AAPL", limit=-1)))
    await _bad(lambda: stub.ListInstruments(ingestion_pb2.ListInstrumentsRequest(underlying="XXXX")))
    await _bad(
        lambda: stub.ListInstruments(ingestion_pb2.ListInstrumentsRequest(page=common_pb2.PageRequest(page_size=5000)))
    )
    await _bad(lambda: stub.GetOptionChainDefinitions(ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="")))
    await _bad(
        lambda: stub.GetOptionChainDefinitions(
            ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="AAPL", expiry="next friday")
        )
    )


async def test_dates_that_are_not_sessions_name_the_nearest_sessions(svc: Any) -> None:
    stub, _ = svc
    ny = ZoneInfo("America/New_York")
    # Juneteenth 2026 is a Friday holiday: nearest sessions Thursday 2026-06-18 and Monday 2026-06-22
    msg = await _bad(
        lambda: stub.GetOptionChainDefinitions(
            ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="AAPL", expiry="2026-06-19")
        )
    )
    assert "expiry" in msg and "2026-06-18" in msg and "2026-06-22" in msg
    # a window inside Saturday 2026-11-28: the Friday early-close session before, Monday after
    start = dt.datetime(2026, 11, 28, 9, 30, tzinfo=ny)
    end = dt.datetime(2026, 11, 28, 16, 0, tzinfo=ny)
    req = ingestion_pb2.GetBarsRequest(symbol="AAPL", interval="1m")
    req.start.FromDatetime(start)
    req.end.FromDatetime(end)
    msg = await _bad(lambda: stub.GetBars(req))
    assert "2026-11-27" in msg and "2026-11-30" in msg
    # a session date with no contracts is an empty answer, not an error
    ok = await stub.GetOptionChainDefinitions(
        ingestion_pb2.GetOptionChainDefinitionsRequest(symbol="AAPL", expiry="2026-06-18")
    )
    assert len(ok.contracts) == 0
