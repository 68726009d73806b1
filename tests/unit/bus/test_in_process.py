"""In-process bus specifics (no servers): partitioning, MAXLEN trimming, closed bus."""

from __future__ import annotations

import asyncio

import pytest

from aiots.services.bus.base import partition_keys
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.errors import FailedPrecondition
from aiots.services.common.settings import RedisSettings
from aiots.v1 import events_pb2


def test_partition_keys_is_disjoint_total_and_stable() -> None:
    keys = [f"S{i}" for i in range(100)]
    parts = [partition_keys(keys, i, 3) for i in range(3)]
    assert sorted(k for p in parts for k in p) == sorted(keys)
    assert parts == [partition_keys(keys, i, 3) for i in range(3)]
    assert all(parts)
    for bad in ((0, 0), (3, 3), (-1, 2)):
        with pytest.raises(ValueError, match="partition"):
            partition_keys(keys, *bad)


async def test_maxlen_keeps_newest_and_trimmed_are_not_delivered() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", stream_maxlen=5, read_batch=100))
    await bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(12)])
    it = bus.consume("t", ["K"], group="g", consumer="c", start="0")
    got = [events_pb2.TradeEvent.FromString((await anext(it)).payload).sequence for _ in range(5)]
    assert got == [7, 8, 9, 10, 11]
    await it.aclose()
    await bus.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        await bus.publish("t", "K", events_pb2.TradeEvent())


async def test_orphans_are_redelivered_in_stream_order_after_partial_acks() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", read_batch=100, claim_idle_ms=60_000))
    await bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(10)])
    dead = bus.consume("t", ["K"], group="g", consumer="a", start="0")
    got = [await anext(dead) for _ in range(10)]
    for d in got[::2]:
        await bus.ack(d, group="g")
    await dead.aclose()  # its unacked (odd) entries become orphans
    alive = bus.consume("t", ["K"], group="g", consumer="b")
    again = [await anext(alive) for _ in range(5)]
    assert [events_pb2.TradeEvent.FromString(d.payload).sequence for d in again] == [1, 3, 5, 7, 9]
    assert [d.message_id for d in again] == [d.message_id for d in got[1::2]]
    for d in again:
        await bus.ack(d, group="g")
    assert await bus.pending_count("t", "K", "g") == 0
    await alive.aclose()
    await bus.close()


async def test_listener_blocked_in_read_ends_on_aclose_and_on_bus_close() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", listen_queue_size=2))
    a, b = bus.listen("ch"), bus.listen("ch")

    async def drain(sub: object) -> list[bytes]:
        return [p async for p in sub]  # type: ignore[attr-defined]

    ra, rb = asyncio.create_task(drain(a)), asyncio.create_task(drain(b))
    await bus.broadcast("ch", events_pb2.TradeEvent())  # b"": a valid (empty) payload, not the end
    await asyncio.sleep(0)
    await a.aclose()
    assert await asyncio.wait_for(ra, 5) == [b""]
    await bus.close()
    assert await asyncio.wait_for(rb, 5) == [b""]


async def test_full_listener_still_ends_on_close() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", listen_queue_size=1))
    sub = bus.listen("ch")
    await bus.broadcast("ch", events_pb2.TradeEvent(sequence=1))  # the queue is now full
    await sub.aclose()
    assert [p async for p in sub] == []
    await bus.close()


async def test_stored_entries_leave_the_garbage_collectors_tracking() -> None:
    """The log holds plain tuples of str/bytes, which the collector untracks after one pass, so a
    full collection does not walk up to ``stream_maxlen`` entries per stream (a 100-200 ms stall of
    the live path before); consumers still get ``Delivery`` objects. Oracle: ``gc.is_tracked``."""
    import gc

    from aiots.services.bus.base import Delivery

    bus = InProcessBus(RedisSettings(namespace="u", read_batch=100))
    await bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(50)])
    await bus.publish("t", "K", events_pb2.TradeEvent(sequence=50))
    gc.collect()
    entries = list(bus._by_topic["t"]["K"].entries)
    assert len(entries) == 51 and not any(gc.is_tracked(e) for e in entries)
    it = bus.consume("t", ["K"], group="g", consumer="c", start="0")
    d = await anext(it)
    assert isinstance(d, Delivery) and d.key == "K" and events_pb2.TradeEvent.FromString(d.payload).sequence == 0
    await it.aclose()
    await bus.close()
