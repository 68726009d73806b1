"""StartCollection(include_options=true) with the Live source: the real databento.Live client
subscribes the equities dataset AND OPRA.PILLAR with parent symbology (``AAPL.OPT``,
stype_in=parent) for definition, statistics and cbbo-1s against the local LSG gateway, which
plays the real OPRA sample records. Oracle: databento's own ``DBNStore.to_df`` of those files."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import databento as db
import databento_dbn as dbn
import grpc
import numpy as np
import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.app import create_app
from aiots.v1 import common_pb2, events_pb2, ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion.fake_databento import FakeLive, LivePlan, trade

warnings.filterwarnings("ignore", module="databento")

KEY = "db-" + "O" * 29
OPRA = "dbn/databento-python/OPRA.PILLAR"
OSI = "AAPL  250221C00250000"
NS = 1_000_000_000


def _records(path: Path) -> list[Any]:
    return list(db.DBNStore.from_file(path))


@pytest.fixture
async def live_options(
    shared_data: Path, make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, Any, FakeLive, InProcessBus]]:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    opra = [
        r
        for s in ("definition", "statistics", "cbbo-1s")
        for r in _records(shared_data / f"{OPRA}/test_data.{s}.dbn.zst")
    ]
    iid = opra[0].instrument_id
    now = int(dt.datetime.now(dt.UTC).timestamp()) * NS
    eq = [trade(100, now - 2 * NS + i, 230.0 + i, i + 1) for i in range(2)]
    gw = FakeLive(
        KEY,
        "EQUS.MINI",
        {"AAPL": 100},
        [LivePlan(eq, "hang")],
        parents={"AAPL.OPT": {OSI: iid}},
        plans_by_dataset={"OPRA.PILLAR": [LivePlan(opra, "hang")]},
    )
    port = gw.start()
    settings = Settings(
        database_url=make_database(True),
        databento_api_key=KEY,
        symbols=["AAPL"],
        databento={"live_gateway": "127.0.0.1", "live_port": port, "heartbeat_interval_s": 5},
        ingestion={"spill_dir": tmp_path / "spill", "autostart": False, "flush_interval_s": 0.02},
    )
    bus = InProcessBus()
    app = await create_app(Runtime(settings=settings, bus=bus), port=0)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel), app, gw, bus
    finally:
        await channel.close()
        await app.stop()
        gw.stop()


async def test_include_options_subscribes_opra_parent_and_publishes_option_quotes(
    shared_data: Path, live_options: tuple[Any, Any, FakeLive, InProcessBus]
) -> None:
    stub, app, gw, bus = live_options
    req = ingestion_pb2.StartCollectionRequest(
        symbols=["AAPL"], schemas=["trades"], source=ingestion_pb2.DATA_SOURCE_LIVE, include_options=True
    )
    r = await stub.StartCollection(req)
    assert r.started and r.source == ingestion_pb2.DATA_SOURCE_LIVE and "options" in r.message
    again = await stub.StartCollection(
        ingestion_pb2.StartCollectionRequest(
            symbols=["AAPL"], schemas=["trades"], source=ingestion_pb2.DATA_SOURCE_LIVE
        )
    )
    assert not again.started and again.job_id == r.job_id  # options job covers a plain request

    cbbo = db.DBNStore.from_file(shared_data / f"{OPRA}/test_data.cbbo-1s.dbn.zst").to_df()
    want_ts = cbbo["ts_event"].fillna(cbbo.index.to_series()).astype("datetime64[ns, UTC]").array.asi8
    events: list[events_pb2.OptionQuoteEvent] = []

    async def collect() -> None:
        async for d in bus.consume("options:quotes", ["AAPL"], group="test", consumer="c1", start="0"):
            events.append(events_pb2.OptionQuoteEvent.FromString(d.payload))
            await bus.ack(d, group="test")
            if len(events) == len(cbbo):
                return

    await asyncio.wait_for(collect(), 20)
    opra_subs = [s for s in gw.subscriptions if s.startswith("dataset=OPRA.PILLAR|")]
    assert {dict(kv.split("=", 1) for kv in s.split("|"))["schema"] for s in opra_subs} == {
        "definition",
        "statistics",
        "cbbo-1s",
    }
    assert all("stype_in=parent" in s and "symbols=AAPL.OPT" in s for s in opra_subs)
    assert any(s.startswith("dataset=EQUS.MINI|") and "symbols=AAPL" in s for s in gw.subscriptions)

    assert [e.symbol for e in events] == [OSI] * len(cbbo)
    np.testing.assert_array_equal([e.ts_event for e in events], want_ts)
    # no price on a side (UNDEF_PRICE, NaN in to_df) is 0 on the wire
    np.testing.assert_allclose([e.bid for e in events], np.nan_to_num(cbbo["bid_px_00"].to_numpy(float)), atol=1e-9)
    np.testing.assert_allclose([e.ask for e in events], np.nan_to_num(cbbo["ask_px_00"].to_numpy(float)), atol=1e-9)
    np.testing.assert_array_equal([e.bid_size for e in events], cbbo["bid_sz_00"].to_numpy())
    c = events[0].contract
    assert (c.occ_symbol, c.underlying, c.strike, c.expiry, c.right) == (
        OSI,
        "AAPL",
        250.0,
        "2025-02-21",
        common_pb2.OPTION_RIGHT_CALL,
    )

    # stored: the definition (instrument), open interest (statistics) and the quotes
    assert app.manager is not None
    pool = app.rt.db
    stats = db.DBNStore.from_file(shared_data / f"{OPRA}/test_data.statistics.dbn.zst").to_df()

    async def stored() -> bool:
        await app.manager.writer.flush()
        n = await pool.fetchval("SELECT count(*) FROM option_quotes WHERE symbol = $1", OSI)
        return bool(n == len(cbbo))

    for _ in range(100):
        if await stored():
            break
        await asyncio.sleep(0.05)
    assert await stored()
    oi = await pool.fetchval("SELECT open_interest FROM option_stats WHERE symbol = $1", OSI)
    assert oi == float(stats["quantity"].iloc[-1])
    ins = await pool.fetchrow(
        "SELECT kind, underlying, strike, expiry, option_right FROM instruments WHERE symbol=$1", OSI
    )
    assert tuple(ins) == (2, "AAPL", 250.0, dt.date(2025, 2, 21), "C")
    st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
    by = {(s.symbol, s.schema): s for s in st.streams}
    assert by[("AAPL", "opra:cbbo-1s")].records == len(cbbo)
    assert by[("AAPL", "trades")].records == 2
    await stub.StopCollection(ingestion_pb2.StopCollectionRequest(all=True))


def _q(ts: int, bid: float, ask: float, bsz: int = 1, asz: int = 1, seq: int = 0) -> Any:
    return dbn.MBP1Msg(
        publisher_id=1, instrument_id=100, ts_event=ts, price=round(bid * 1e9), size=1, action=dbn.Action.ADD,
        side=dbn.Side.BID, depth=0, ts_recv=ts, sequence=seq,
        levels=dbn.BidAskPair(bid_px=round(bid * 1e9), ask_px=round(ask * 1e9), bid_sz=bsz, ask_sz=asz, bid_ct=1,
                              ask_ct=1),
    )  # fmt: skip


async def test_data_quality_counts_are_exact_in_status_and_storage(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crafted crossed, zero-size and out-of-order records: each counted once, in the status and the table."""
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    t0 = int(dt.datetime.now(dt.UTC).timestamp()) * NS - 60 * NS
    recs = [
        _q(t0, 100.0, 101.0, seq=1),  # fine
        _q(t0 + 2, 102.0, 101.0, seq=2),  # crossed
        _q(t0 + 3, 100.0, 101.0, bsz=0, seq=3),  # zero size (bid)
        _q(t0 + 1, 100.0, 101.0, seq=4),  # out of order (t0+1 < t0+3)
        _q(t0 + 4, 103.0, 102.0, asz=0, seq=5),  # crossed and zero size (ask)
        trade(100, t0 + 10, 100.5, 6),
        trade(100, t0 + 5, 100.5, 7),  # out of order trade
    ]
    want = {"crossed_quote": 2, "zero_size_quote": 2, "out_of_order": 2}
    gw = FakeLive(KEY, "EQUS.MINI", {"AAPL": 100}, [LivePlan(recs, "hang")])
    port = gw.start()
    settings = Settings(
        database_url=make_database(True), databento_api_key=KEY, symbols=["AAPL"],
        databento={"live_gateway": "127.0.0.1", "live_port": port, "heartbeat_interval_s": 5},
        ingestion={"spill_dir": tmp_path / "spill", "autostart": False, "flush_interval_s": 0.02},
    )  # fmt: skip
    app = await create_app(Runtime(settings=settings, bus=InProcessBus()), port=0)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
            await stub.StartCollection(ingestion_pb2.StartCollectionRequest(
                symbols=["AAPL"], schemas=["mbp-1", "trades"], source=ingestion_pb2.DATA_SOURCE_LIVE))  # fmt: skip
            for _ in range(200):
                st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
                if sum(s.records for s in st.streams) >= len(recs):
                    break
                await asyncio.sleep(0.05)
            assert st.data_quality_events == sum(want.values())
            await stub.StopCollection(ingestion_pb2.StopCollectionRequest(all=True))
        rows = await app.rt.db.fetch("SELECT kind, detail FROM data_quality_events WHERE symbol = 'AAPL'")
        got: dict[str, int] = {}
        for r in rows:
            n = int(r["detail"].split("n=", 1)[1].split()[0])
            got[r["kind"]] = got.get(r["kind"], 0) + n
        assert got == want
    finally:
        await app.stop()
        gw.stop()
