"""Issue #8's end-to-end path: a scripted market as DBN files -> ingestion replay (decode,
normalise, bars from trades, storage writer) -> bus -> analytics' live state (features:1m) -> signals
engine -> SignalService -> client.

The market is built so that a volume-confirmed breakout happens on minute 80; the option chain
(definitions, open interest, quotes, a trade per contract) is priced with the core's American
pricer and quoted again 5 s before the breakout bar closes (quotes older than the execution
model's 60 s never fill). A typed gRPC client subscribed before the replay must receive exactly
that signal, entered at the ask.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import databento_dbn as dbn
import grpc
import numpy as np
import pytest

from aiots.core import options as opt
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.normalize import SOURCE_REPLAY
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import replay_files
from aiots.services.signals.app import SignalsApp, expiry_ns
from aiots.services.signals.config import SignalsConfig
from aiots.services.storage.writer import Writer
from aiots.v1 import common_pb2, signals_pb2, signals_pb2_grpc
from tests.integration.signals.test_engine_e2e import features_owner

pytestmark = pytest.mark.integration

NS = 1_000_000_000
MIN = 60 * NS
T0 = 1_760_016_600 * NS  # 2025-10-09 09:30 New York
BREAKOUT = 80
EXPIRY = dt.date(2025, 10, 17)
SCALE = 1_000_000_000
PUB_EQ, PUB_OPRA = 2, 30
AAPL_ID = 1


def fx(dollars: float) -> int:
    return round(dollars * SCALE)


def dbn_file(path: Path, records: list[Any], symbols: list[str], ids: dict[str, int]) -> Path:
    d0 = dt.datetime.fromtimestamp(T0 / NS, dt.UTC).date()
    maps = [
        SimpleNamespace(
            raw_symbol=s, intervals=[SimpleNamespace(start_date=d0, end_date=d0 + dt.timedelta(1), symbol=str(ids[s]))]
        )
        for s in symbols
    ]
    meta = dbn.Metadata(
        dataset="XNAS.ITCH",
        start=T0,
        end=None,
        schema=None,
        stype_in=None,
        stype_out=dbn.SType.INSTRUMENT_ID,
        symbols=symbols,
        partial=[],
        not_found=[],
        mappings=maps,
    )
    path.write_bytes(bytes(meta) + b"".join(bytes(r) for r in records))
    return path


def mapping(iid: int, sym: str) -> Any:
    return dbn.SymbolMappingMsg(
        publisher_id=PUB_EQ, instrument_id=iid, ts_event=T0, stype_in=dbn.SType.RAW_SYMBOL, stype_in_symbol=sym,
        stype_out=dbn.SType.INSTRUMENT_ID, stype_out_symbol=sym, start_ts=T0, end_ts=T0 + 86_400 * NS,
    )  # fmt: skip


def chain_records(spot: float) -> tuple[list[Any], dict[str, int], dict[str, tuple[float, float]]]:
    """Definitions, open interest, one quote and one 20-lot trade per contract (at T0), and the same
    quote again 5 s before the breakout bar closes."""
    T = (expiry_ns(EXPIRY.isoformat()) - T0) / (365 * 86_400 * NS)
    recs: list[Any] = []
    ids: dict[str, int] = {}
    quotes: dict[str, tuple[float, float]] = {}
    iid = 100
    for k in range(190, 211):
        for right in ("C", "P"):
            occ = f"AAPL  {EXPIRY:%y%m%d}{right}{k * 1000:08d}"
            p = float(opt.american_price(spot, float(k), T, 0.045, 0.25, 0.0, right == "C"))
            bid, ask = round(p * 0.99, 2), round(p * 1.01, 2)
            ids[occ], quotes[occ] = iid, (bid, ask)
            recs.append(mapping(iid, occ))
            recs.append(dbn.InstrumentDefMsg(
                publisher_id=PUB_OPRA, instrument_id=iid, ts_event=T0, ts_recv=T0, min_price_increment=10_000_000,
                display_factor=SCALE, raw_symbol=occ, asset="AAPL", security_type="OPT",
                instrument_class=dbn.InstrumentClass.CALL if right == "C" else dbn.InstrumentClass.PUT,
                security_update_action=dbn.SecurityUpdateAction.ADD,
                expiration=int(dt.datetime(EXPIRY.year, EXPIRY.month, EXPIRY.day, tzinfo=dt.UTC).timestamp()) * NS,
                activation=T0, strike_price=fx(k), underlying_id=AAPL_ID, contract_multiplier=100, currency="USD",
                exchange="OPRA", underlying="AAPL", strike_price_currency="USD",
            ))  # fmt: skip
            recs.append(dbn.StatMsg(
                publisher_id=PUB_OPRA, instrument_id=iid, ts_event=T0, ts_recv=T0, ts_ref=T0, price=dbn.UNDEF_PRICE,
                quantity=2000, sequence=0, ts_in_delta=0, stat_type=dbn.StatType.OPEN_INTEREST, channel_id=0,
                stat_flags=0,
            ))  # fmt: skip
            recs.append(dbn.CBBOMsg(
                rtype=dbn.RType.CBBO_1S, publisher_id=PUB_OPRA, instrument_id=iid, ts_event=T0 + 1,
                price=dbn.UNDEF_PRICE, size=0, side=dbn.Side.NONE, ts_recv=T0 + 1,
                levels=dbn.ConsolidatedBidAskPair(bid_px=fx(bid), ask_px=fx(ask), bid_sz=10, ask_sz=10,
                                                  bid_pb=PUB_OPRA, ask_pb=PUB_OPRA),
            ))  # fmt: skip
            recs.append(dbn.TradeMsg(
                publisher_id=PUB_OPRA, instrument_id=iid, ts_event=T0 + 2, price=fx(0.5 * (bid + ask)), size=20,
                action=dbn.Action.TRADE, side=dbn.Side.NONE, depth=0, ts_recv=T0 + 2, sequence=iid,
            ))  # fmt: skip
            iid += 1
    late = T0 + (BREAKOUT + 1) * MIN - 5 * NS
    for occ, (bid, ask) in quotes.items():
        recs.append(dbn.CBBOMsg(
            rtype=dbn.RType.CBBO_1S, publisher_id=PUB_OPRA, instrument_id=ids[occ], ts_event=late,
            price=dbn.UNDEF_PRICE, size=0, side=dbn.Side.NONE, ts_recv=late,
            levels=dbn.ConsolidatedBidAskPair(bid_px=fx(bid), ask_px=fx(ask), bid_sz=10, ask_sz=10,
                                              bid_pb=PUB_OPRA, ask_pb=PUB_OPRA),
        ))  # fmt: skip
    return recs, ids, quotes


def stock_trades() -> list[Any]:
    """Four trades per minute (open, high, low, close) forming the scripted 1-minute bars."""
    rng = np.random.default_rng(11)
    recs: list[Any] = [mapping(AAPL_ID, "AAPL")]
    price, seq = 200.0, 0
    for i in range(BREAKOUT + 1):
        o = price
        if i < BREAKOUT:
            c = 200.0 + 0.4 * np.sin(i / 3.0) + rng.normal(0, 0.05)
            hi, lo, sizes = max(o, c) + 0.1, min(o, c) - 0.1, (300, 200, 200, 300)
        else:  # the breakout: close well above the 20-bar high on 4x volume
            c = 201.2
            hi, lo, sizes = c + 0.05, o - 0.05, (1200, 800, 800, 1200)
        t = T0 + i * MIN
        for j, (px, sz) in enumerate(zip((o, hi, lo, c), sizes, strict=True)):
            seq += 1
            recs.append(dbn.TradeMsg(
                publisher_id=PUB_EQ, instrument_id=AAPL_ID, ts_event=t + (j + 1) * 10 * NS, price=fx(round(px, 2)),
                size=sz, action=dbn.Action.TRADE, side=dbn.Side.BID, depth=0, ts_recv=t + (j + 1) * 10 * NS,
                sequence=seq,
            ))  # fmt: skip
        price = c
    return recs


@pytest.fixture
async def stack(pg_pool: Any, pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[SignalsApp, Pipeline, Writer]]:
    settings = Settings(signals={"port": 0, "heartbeat_s": 1.0}, symbols=["AAPL", "MSFT"])
    bus = InProcessBus(settings.redis)
    await pg_pool.execute("DELETE FROM signals WHERE symbol = 'AAPL'")
    writer = Writer(pg_dsn, spill_dir=tmp_path / "spill")
    await writer.start()
    pipeline = Pipeline(writer=writer, bus=bus, source=SOURCE_REPLAY)
    app = SignalsApp(Runtime(settings=settings, db=pg_pool, bus=bus), port=0)
    async with features_owner(settings, bus):
        await app.start()
        yield app, pipeline, writer
        await app.stop()
    await writer.close()
    await bus.close()


async def test_replayed_breakout_reaches_a_subscriber(
    stack: tuple[SignalsApp, Pipeline, Writer], tmp_path: Path
) -> None:
    app, pipeline, writer = stack
    chain, ids, quotes = chain_records(200.0)
    chain_file = dbn_file(tmp_path / "chain.dbn", chain, list(ids), ids)
    bars_file = dbn_file(tmp_path / "aapl.dbn", stock_trades(), ["AAPL"], {"AAPL": AAPL_ID})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(
            signals_pb2.SubscribeSignalsRequest(symbols=["AAPL"], strategies=["momentum_breakout"])
        )
        for _ in range(200):
            if app.broker.subscribers:
                break
            await asyncio.sleep(0.01)
        await replay_files([chain_file], pipeline)
        for _ in range(500):  # the session's chain is in the engine before the market opens
            if len(app.engine.chains.chain("AAPL")) == len(ids):
                break
            await asyncio.sleep(0.01)
        chain_seen = {q.occ_symbol: q for q in app.engine.chains.chain("AAPL")}
        assert all(q.open_interest == 2000 and q.volume == 20 for q in chain_seen.values())
        await replay_files([bars_file], pipeline)

        msg = await asyncio.wait_for(_next_event(call), 20)
        call.cancel()
    s = msg.signal
    sc = SignalsConfig().selection
    assert s.strategy == "momentum_breakout" and s.direction == signals_pb2.DIRECTION_BULLISH
    assert s.created_at.ToNanoseconds() == T0 + (BREAKOUT + 1) * MIN  # the close of the breakout minute
    assert s.underlying_price == pytest.approx(201.2)
    assert s.contract.right == common_pb2.OPTION_RIGHT_CALL and s.contract.expiry == EXPIRY.isoformat()
    bid, ask = quotes[s.contract.occ_symbol]
    assert (s.bid, s.ask) == (bid, ask) and s.entry_price == ask  # bought at the ask
    assert sc.delta_min <= s.greeks.delta <= sc.delta_max
    fee = s.fee_per_contract / 100
    net = 100 * ((s.target_price - fee) / (s.entry_price + fee) - 1)  # sold at the bid, after fees
    assert sc.target_min_pct - 1e-9 <= net <= sc.target_max_pct + 1e-9
    assert s.reward_risk >= sc.min_reward_risk - 1e-9
    vol = next(r for r in s.reasons if r.indicator == "volume / avg")
    assert vol.value == pytest.approx(4.0)  # 4,000 shares vs the 1,000-share average
    # The replayed bars were stored too (ingestion's writer), exactly once.
    assert await writer.flush(10)
    n = await app.rt.db.fetchval(
        "SELECT count(*) FROM bars_1m WHERE symbol = 'AAPL' AND ts_event >= $1 AND ts_event < $2",
        T0,
        T0 + (BREAKOUT + 1) * MIN,
    )
    assert n == BREAKOUT + 1


async def _next_event(call: Any) -> signals_pb2.SubscribeSignalsResponse:
    while True:
        m: signals_pb2.SubscribeSignalsResponse = await call.read()
        if m.WhichOneof("event") != "heartbeat":
            return m
