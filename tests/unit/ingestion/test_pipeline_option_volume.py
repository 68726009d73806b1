"""An option quote event carries the contract's volume traded in its own session only.

Oracle: hand-built records: option trades of 3 and 4 contracts on one session day, then quotes of
that contract later that day (volume 7) and on the next session day (volume 0: no trade yet)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import databento_dbn as dbn

from aiots.core.conventions import ny_ns
from aiots.services.bus.in_process import InProcessBus
from aiots.services.ingestion.normalize import SOURCE_LIVE, Normalizer
from aiots.services.ingestion.pipeline import Pipeline
from aiots.v1 import events_pb2

OCC = "AAPL  251219C00200000"
DAY1 = ny_ns(dt.date(2025, 10, 9), dt.time(10, 0))  # a Thursday session, 10:00 New York
DAY2 = ny_ns(dt.date(2025, 10, 10), dt.time(10, 0))


def _mapping(t: int) -> dbn.SymbolMappingMsg:
    return dbn.SymbolMappingMsg(
        publisher_id=0, instrument_id=7, ts_event=t, stype_in=dbn.SType.RAW_SYMBOL, stype_in_symbol=OCC,
        stype_out=dbn.SType.INSTRUMENT_ID, stype_out_symbol=OCC, start_ts=t, end_ts=t + 3 * 86_400 * 10**9,
    )  # fmt: skip


def _trade(t: int, size: int) -> dbn.TradeMsg:
    return dbn.TradeMsg(
        publisher_id=1, instrument_id=7, ts_event=t, price=2 * 10**9, size=size, action=dbn.Action.TRADE,
        side=dbn.Side.BID, depth=0, ts_recv=t, sequence=t % 10**6,
    )  # fmt: skip


def _quote(t: int) -> dbn.MBP1Msg:
    return dbn.MBP1Msg(
        publisher_id=1, instrument_id=7, ts_event=t, price=0, size=0, action=dbn.Action.ADD, side=dbn.Side.BID,
        depth=0, ts_recv=t, sequence=t % 10**6,
        levels=dbn.BidAskPair(bid_px=2 * 10**9, ask_px=21 * 10**8, bid_sz=10, ask_sz=12),
    )  # fmt: skip


async def test_an_option_quote_carries_its_sessions_traded_volume_only() -> None:
    bus = InProcessBus()
    pipe = Pipeline(bus=bus, source=1, build_bars=False)
    norm = Normalizer(SOURCE_LIVE, "OPRA.PILLAR")
    await bus.ensure_group("options:quotes", ["AAPL"], group="g", start="$")
    recs: list[Any] = [_mapping(DAY1), _trade(DAY1, 3), _trade(DAY1 + 10**9, 4)]
    await pipe.process(norm.records(recs))
    await pipe.process(norm.records([_quote(DAY1 + 60 * 10**9)]))
    await pipe.process(norm.records([_quote(DAY2)]))
    seen = []
    async for d in bus.consume("options:quotes", ["AAPL"], group="g", consumer="c", start="$"):
        ev = events_pb2.OptionQuoteEvent.FromString(d.payload)
        seen.append((ev.ts_event, ev.volume))
        if len(seen) == 2:
            break
    assert seen == [(DAY1 + 60 * 10**9, 7.0), (DAY2, 0.0)]
    await bus.close()
