"""Round trips of a Redis Streams consumer, counted on the wire by a TCP relay in front of Redis.

Oracle: the relay's count of request turns (client bytes after a server reply, per connection) and
Redis's own XPENDING: a consumer that acks each batch sends the acks with its next blocking read
(one round trip a batch, not two), and ``flush`` applies acks still riding such a read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from aiots.services.bus.base import Delivery
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import RedisSettings
from aiots.v1 import events_pb2

pytestmark = pytest.mark.timeout(60)


class TurnCountingRelay:
    """Relays 127.0.0.1:<port> to Redis; ``turns`` counts each connection's request turns."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.turns = 0
        self.reads_flow = asyncio.Event()  # cleared: requests holding an XREADGROUP wait here
        self.reads_flow.set()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(*self.target)
        last = ["server"]  # who spoke last on this connection

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, side: str) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await r.read(65536):
                    if side == "client" and last[0] == "server":
                        self.turns += 1
                    last[0] = side
                    if side == "client" and b"XREADGROUP" in data.upper():
                        await self.reads_flow.wait()
                    w.write(data)
                    await w.drain()
            w.close()

        for t in (asyncio.create_task(pump(cr, sw, "client")), asyncio.create_task(pump(sr, cw, "server"))):
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def relayed(redis_url: str) -> AsyncIterator[tuple[TurnCountingRelay, str]]:
    u = urlparse(redis_url)
    relay = TurnCountingRelay(u.hostname or "127.0.0.1", u.port or 6379)
    port = await relay.start()
    yield relay, f"redis://127.0.0.1:{port}{u.path or '/0'}"
    await relay.close()


def trade(seq: int) -> events_pb2.TradeEvent:
    return events_pb2.TradeEvent(symbol="AAPL", ts_event=1_700_000_000_000_000_000 + seq, price=1.0, sequence=seq)


async def test_a_consumer_acks_each_batch_with_its_next_read(
    relayed: tuple[TurnCountingRelay, str], redis_url: str, redis_ns: str
) -> None:
    relay, url = relayed
    cfg = RedisSettings(namespace=redis_ns, read_block_ms=200, claim_interval_s=3600)
    consumer_bus = RedisStreamsBus(url, cfg)  # through the relay
    publisher = RedisStreamsBus(redis_url, cfg)  # straight to Redis, not counted
    await publisher.ensure_group("t", ["AAPL"], group="g", start="$")
    it = consumer_bus.consume("t", ["AAPL"], group="g", consumer="c")
    got: asyncio.Queue[int] = asyncio.Queue()

    async def handle_each() -> None:  # as a service's consumer does: handle, ack, read on
        async for d in it:
            got.put_nowait(events_pb2.TradeEvent.FromString(d.payload).sequence)
            await consumer_bus.ack(d, group="g")

    consumer = asyncio.create_task(handle_each())
    n = 12
    try:
        await publisher.publish("t", "AAPL", trade(0))
        assert await asyncio.wait_for(got.get(), 10) == 0
        await asyncio.sleep(0.05)
        turns_before = relay.turns
        for i in range(1, n + 1):  # one message a batch: the consumer is blocked in a read each time
            await publisher.publish("t", "AAPL", trade(i))
            assert await asyncio.wait_for(got.get(), 10) == i
            await asyncio.sleep(0.02)
        turns = relay.turns - turns_before
        # n reads, each carrying the previous batch's acks; a separate XACK round trip would be 2n.
        assert turns <= n + 1, f"{turns} round trips for {n} one-message batches"
        await consumer_bus.flush()
        assert await publisher.pending_count("t", "AAPL", "g") == 0
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await it.aclose()
        await consumer_bus.close()
        await publisher.close()


async def test_flush_applies_acks_riding_a_read_not_yet_sent(
    relayed: tuple[TurnCountingRelay, str], redis_url: str, redis_ns: str
) -> None:
    """``flush`` returns once the acks are applied, even those a consumer's read carries while that
    read is still on its way (held by the relay here)."""
    relay, url = relayed
    cfg = RedisSettings(namespace=redis_ns, read_block_ms=200, claim_interval_s=3600)
    bus = RedisStreamsBus(url, cfg)
    direct = RedisStreamsBus(redis_url, cfg)
    await direct.ensure_group("t", ["MSFT"], group="g", start="$")
    await direct.publish("t", "MSFT", trade(1))
    it = bus.consume("t", ["MSFT"], group="g", consumer="m")
    reader: asyncio.Task[Delivery] | None = None
    try:
        d = await asyncio.wait_for(anext(it), 10)
        relay.reads_flow.clear()
        reader = asyncio.create_task(anext(it))  # runs before the ack's own flush: its read carries it
        await bus.ack(d, group="g")
        await asyncio.sleep(0.2)
        assert await direct.pending_count("t", "MSFT", "g") == 1  # the read (and its ack) is held
        await asyncio.wait_for(bus.flush(), 10)
        assert await direct.pending_count("t", "MSFT", "g") == 0
    finally:
        relay.reads_flow.set()
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await it.aclose()
        await bus.close()
        await direct.close()


async def test_an_ack_redis_refuses_does_not_cost_the_read_its_messages(redis_url: str, redis_ns: str) -> None:
    """An XACK that fails on the server (here: a key of the wrong type) rides the same pipeline as
    the read: the read's messages still arrive, and the other acks still apply."""
    cfg = RedisSettings(namespace=redis_ns, read_block_ms=200, claim_interval_s=3600)
    bus = RedisStreamsBus(redis_url, cfg)
    await bus.ensure_group("t", ["AAPL"], group="g", start="$")
    wrong = f"{redis_ns}:not-a-stream"
    await bus.redis.set(wrong, "x")
    await bus.publish("t", "AAPL", trade(1))
    it = bus.consume("t", ["AAPL"], group="g", consumer="c")
    try:
        first = await asyncio.wait_for(anext(it), 10)
        await bus.publish("t", "AAPL", trade(2))
        reader = asyncio.create_task(anext(it))  # runs before the acks' own flush: its read carries them
        await bus.ack(Delivery(wrong, "1-1", "AAPL", b""), group="g")
        await bus.ack(first, group="g")
        second = await asyncio.wait_for(reader, 10)
        assert events_pb2.TradeEvent.FromString(second.payload).sequence == 2
        await bus.ack(second, group="g")
        await bus.flush()
        assert await bus.pending_count("t", "AAPL", "g") == 0
    finally:
        await it.aclose()
        await bus.redis.delete(wrong)
        await bus.close()
