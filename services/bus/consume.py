"""One consumer loop for every service: handle each delivery, never let a bad message stop the
loop, acknowledge after handling (at-least-once: handlers must be idempotent)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiots.services.common.ports import Bus, Delivery

log = logging.getLogger(__name__)


async def handle_each(
    bus: Bus,
    deliveries: AsyncIterator[Delivery],
    group: str,
    handle: Callable[[bytes], Awaitable[None]],
    who: str,
    after: Callable[[Delivery], None] | None = None,
) -> None:
    """Run ``handle`` on each payload (a failure is logged with its stream, then acknowledged like a
    success so one bad message cannot block a stream), then ``after`` (metrics) per delivery."""
    async for d in deliveries:
        try:
            await handle(d.payload)
        except Exception:
            log.exception("%s: failed to process a bus message", who, extra={"stream": d.stream})
        await bus.ack(d, group=group)
        if after is not None:
            after(d)
