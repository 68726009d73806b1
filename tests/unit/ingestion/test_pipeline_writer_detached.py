"""Publishing never waits for storage (issue 20 item 4): a live pipeline publishes each batch at
once while the writer is blocked, and the writer still gets every batch, in order, afterwards.

Oracle: the records built here by hand (two option quotes of a known contract)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import databento_dbn as dbn

from aiots.services.bus.in_process import InProcessBus
from aiots.services.ingestion.normalize import SOURCE_LIVE, Normalizer
from aiots.services.ingestion.pipeline import Pipeline
from aiots.v1 import events_pb2

OCC = "AAPL  251219C00200000"


class HeldWriter:
    """A writer whose put() waits until released (PostgreSQL slow or away)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.got: list[Any] = []

    async def put(self, batch: Any) -> None:
        await self.release.wait()
        self.got.append(batch)


def quotes(norm: Normalizer, seqs: list[int]) -> Any:
    now = time.time_ns()
    recs: list[Any] = [
        dbn.SymbolMappingMsg(
            publisher_id=0, instrument_id=7, ts_event=now, stype_in=dbn.SType.RAW_SYMBOL, stype_in_symbol=OCC,
            stype_out=dbn.SType.INSTRUMENT_ID, stype_out_symbol=OCC, start_ts=now, end_ts=now + 86_400 * 10**9,
        )
    ]  # fmt: skip
    for k in seqs:
        recs.append(
            dbn.MBP1Msg(
                publisher_id=1, instrument_id=7, ts_event=now + k, price=2 * 10**9, size=10, action=dbn.Action.ADD,
                side=dbn.Side.BID, flags=0, depth=0, ts_recv=now + k, sequence=k,
                levels=dbn.BidAskPair(bid_px=2 * 10**9, ask_px=21 * 10**8, bid_sz=10, ask_sz=12, bid_ct=1, ask_ct=1),
            )
        )  # fmt: skip
    return norm.records(recs)


async def test_detached_writer_never_delays_the_bus_and_gets_every_batch_in_order() -> None:
    bus = InProcessBus()
    writer = HeldWriter()
    pipe = Pipeline(writer=writer, bus=bus, source=1, build_bars=False)
    norm = Normalizer(SOURCE_LIVE, "OPRA.PILLAR")
    await bus.ensure_group("options:quotes", ["AAPL"], group="g", start="$")
    pipe.detach_writer()
    b1, b2 = quotes(norm, [1]), quotes(norm, [2])
    await asyncio.wait_for(pipe.process(b1), 5)  # returns although the writer is blocked
    await asyncio.wait_for(pipe.process(b2), 5)
    seen = []
    async for d in bus.consume("options:quotes", ["AAPL"], group="g", consumer="c", start="$"):
        ev = events_pb2.OptionQuoteEvent.FromString(d.payload)
        seen.append((ev.symbol, ev.contract.strike, ev.bid, ev.ask))
        if len(seen) == 2:
            break
    assert seen == [(OCC, 200.0, 2.0, 2.1)] * 2
    assert writer.got == [] and pipe.owed == 2
    writer.release.set()
    await asyncio.wait_for(pipe.attach_writer(), 5)
    assert writer.got == [b1, b2] and pipe.owed == 0
    await bus.close()


async def test_attached_writer_keeps_backpressure_for_file_sources() -> None:
    writer = HeldWriter()
    pipe = Pipeline(writer=writer, bus=None, source=3, build_bars=False)
    task = asyncio.ensure_future(pipe.process(quotes(Normalizer(SOURCE_LIVE, "OPRA.PILLAR"), [1])))
    await asyncio.sleep(0.05)
    assert not task.done()  # waits for the writer: decode is held back, memory stays bounded
    writer.release.set()
    await asyncio.wait_for(task, 5)
    assert len(writer.got) == 1


class HeldNetworkBus(InProcessBus):
    """A networked bus (not ``memory``) whose publish round trip waits until released."""

    backend = "redis"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.commands: list[int] = []

    async def publish_many(self, topic: str, items: Any) -> None:
        await self.release.wait()
        self.commands.append(len(items))
        await super().publish_many(topic, items)


async def test_detached_pipeline_never_waits_for_a_bus_round_trip_and_publishes_all_in_order() -> None:
    """With a networked bus, decoding goes on while a publish is in flight; what was decoded
    meanwhile goes out in the next command, in order; attach_writer sends everything owed."""
    bus = HeldNetworkBus()
    pipe = Pipeline(bus=bus, source=1, build_bars=False)
    norm = Normalizer(SOURCE_LIVE, "OPRA.PILLAR")
    await bus.ensure_group("options:quotes", ["AAPL"], group="g", start="$")
    pipe.detach_writer()
    for k in range(1, 4):
        await asyncio.wait_for(pipe.process(quotes(norm, [k])), 5)  # returns while the bus is held
    assert bus.commands == []
    bus.release.set()
    await asyncio.wait_for(pipe.attach_writer(), 5)
    assert sum(bus.commands) == 3 and pipe.published == 3 and len(bus.commands) <= 2  # coalesced
    seqs = []
    async for d in bus.consume("options:quotes", ["AAPL"], group="g", consumer="c", start="$"):
        seqs.append(events_pb2.OptionQuoteEvent.FromString(d.payload).ts_event)
        if len(seqs) == 3:
            break
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    await bus.close()
