"""The shared consumer loop: every delivery is handled then acknowledged, a failing handler is
logged and acknowledged too (it never stops the loop), and ``after`` sees each delivery.

Oracle: the in-process bus's own pending-entry accounting (nothing left pending)."""

from __future__ import annotations

import asyncio

from aiots.services.bus.consume import handle_each
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.settings import Settings
from aiots.v1 import events_pb2


async def test_handles_acks_and_survives_a_bad_message() -> None:
    bus = InProcessBus(Settings().redis)
    seen: list[bytes] = []
    after: list[str] = []

    async def handle(payload: bytes) -> None:
        ev = events_pb2.TradeEvent.FromString(payload)
        if ev.size == 2:
            raise ValueError("a bad message")
        seen.append(payload)

    await bus.ensure_group("t", ["K"], group="g", start="0")
    for size in (1, 2, 3):
        await bus.publish("t", "K", events_pb2.TradeEvent(symbol="K", size=size))
    task = asyncio.create_task(
        handle_each(bus, bus.consume("t", ["K"], group="g", consumer="c", start="0"), "g", handle, "test",
                    lambda d: after.append(d.message_id))
    )  # fmt: skip
    for _ in range(200):
        if len(after) == 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [events_pb2.TradeEvent.FromString(p).size for p in seen] == [1, 3]
    assert len(after) == 3  # the failing one was acknowledged and counted too
    assert await bus.pending_count("t", "K", "g") == 0  # every delivery acknowledged
    await bus.close()
