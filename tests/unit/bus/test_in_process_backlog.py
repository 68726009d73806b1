"""``InProcessBus.backlog``: what a lockstep replay waits on (counted by hand)."""

from __future__ import annotations

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.settings import RedisSettings
from aiots.v1 import events_pb2


async def test_backlog_counts_undelivered_and_unacked_entries_of_live_groups() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", read_batch=100))
    assert await bus.backlog() == 0
    await bus.ensure_group("t", ["K"], group="g")
    await bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(3)])
    assert await bus.backlog() == 0  # a group with no live consumer waits for nobody
    it = bus.consume("t", ["K"], group="g", consumer="c")
    first = await anext(it)  # the consumer takes the batch of 3: all pending now
    assert await bus.backlog() == 3
    await bus.ack(first, group="g")
    assert await bus.backlog() == 2
    for _ in range(2):
        await bus.ack(await anext(it), group="g")
    assert await bus.backlog() == 0
    await bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(2)])
    assert await bus.backlog() == 2  # published, not yet delivered
    assert await bus.backlog(["t"]) == 2
    assert await bus.backlog(["other"]) == 0
    await it.aclose()
    assert await bus.backlog() == 0
    await bus.close()
