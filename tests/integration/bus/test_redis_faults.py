"""Redis killed (SIGKILL) mid-traffic and restarted: the bus recovers and no acknowledged XADD is lost.

The private redis-server runs with ``appendonly yes`` + ``appendfsync always`` in tmp_path:
Redis answers an XADD only after the AOF write is fsynced, so every message whose ``publish``
returned survives the kill. (Without persistence a restart loses everything; the consumer then
recreates its group from 0 and only messages published after the restart are delivered.)
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.errors import Unavailable
from aiots.services.common.settings import RedisSettings
from aiots.v1 import events_pb2
from tests.integration.bus.redis_fixtures import RedisProc

pytestmark = pytest.mark.timeout(90)

CFG = RedisSettings(
    namespace="fault",
    claim_idle_ms=300,
    claim_interval_s=0.2,
    read_block_ms=100,
    read_batch=64,
    socket_timeout_s=1.0,
    reconnect_initial_backoff_s=0.02,
    reconnect_max_backoff_s=0.3,
)


async def test_kill_and_restart_loses_no_acknowledged_message(redis_proc: RedisProc, tmp_path: Path) -> None:
    """Every publish returns (the outage goes to the outbox), and afterwards each event is in its
    stream exactly once, in publish order per stream (oracle: XRANGE of the streams)."""
    keys = ["AAPL", "MSFT", "SPY"]
    cfg = CFG.model_copy(update={"outbox_dir": tmp_path / "outbox"})
    pub, sub = RedisStreamsBus(redis_proc.url, cfg), RedisStreamsBus(redis_proc.url, cfg)
    await pub.ensure_group("trades", keys, group="g")
    received: set[int] = set()
    n = 1500

    async def consume() -> None:
        async for d in sub.consume("trades", keys, group="g", consumer="c1"):
            received.add(events_pb2.TradeEvent.FromString(d.payload).sequence)
            await sub.ack(d, group="g")

    async def produce() -> None:
        for seq in range(n):
            ev = events_pb2.TradeEvent(symbol=keys[seq % 3], ts_event=seq + 1, price=1.0, sequence=seq)
            await pub.publish("trades", keys[seq % 3], ev)  # never raises: the outbox takes it
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(consume())
    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.4)
    redis_proc.kill()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(redis_proc.start)
    await asyncio.wait_for(producer, 60)
    assert await pub.drain_outbox(30)
    async with asyncio.timeout(30):
        while len(received) < n:
            await asyncio.sleep(0.05)
    consumer.cancel()
    assert pub.outbox_stats.spilled > 0, "the outage was seen by the publisher"
    assert pub.outbox_stats.replayed + pub.outbox_stats.deduplicated == pub.outbox_stats.spilled
    assert received == set(range(n))
    streamed: list[int] = []
    for k in keys:
        entries = await sub.redis.xrange(f"fault:v1:trades:{k}")
        seqs = [events_pb2.TradeEvent.FromString(f[b"p"]).sequence for _, f in entries]
        assert seqs == sorted(seqs), f"{k}: out of order"
        streamed += seqs
    assert sorted(streamed) == list(range(n)), "an event is missing or duplicated in the streams"
    await pub.close()
    await sub.close()
    assert not any((tmp_path / "outbox").rglob("*.seg"))


async def test_listener_resubscribes_after_restart(redis_proc: RedisProc) -> None:
    a, b = RedisStreamsBus(redis_proc.url, CFG), RedisStreamsBus(redis_proc.url, CFG)
    sub = b.listen("prices")
    await sub.start()
    redis_proc.kill()
    with pytest.raises(Unavailable, match="unreachable"):
        await a.broadcast("prices", events_pb2.TradeEvent(sequence=1))
    await asyncio.to_thread(redis_proc.start)
    got: list[int] = []

    async def read() -> None:
        async for p in sub:
            got.append(events_pb2.TradeEvent.FromString(p).sequence)
            return

    reader = asyncio.create_task(read())
    async with asyncio.timeout(15):
        while not got:  # fire-and-forget: repeat until the listener is back
            with contextlib.suppress(Unavailable):
                await a.broadcast("prices", events_pb2.TradeEvent(sequence=2))
            await asyncio.sleep(0.1)
    await reader
    assert got == [2]
    await a.close()
    await b.close()


async def test_a_cancel_lost_on_the_way_still_stops_the_consumer(redis_url: str, redis_ns: str) -> None:
    """A call inside the consumer's round turns the task's cancellation into a timeout (the retry
    path then reads on): the consumer still ends at its next round. Oracle: the task is done and
    cancelled within 3 s (before the fix it polled XREADGROUP until the test's timeout)."""
    bus = RedisStreamsBus(redis_url, CFG.model_copy(update={"namespace": redis_ns}))
    await bus.ensure_group("trades", ["AAPL"], group="g")
    real = bus.redis.xreadgroup
    reading = asyncio.Event()
    swallowed = 0

    async def lossy(*args: object, **kwargs: object) -> object:
        nonlocal swallowed
        reading.set()
        try:
            return await real(*args, **kwargs)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            swallowed += 1
            raise TimeoutError("read timed out") from None  # the cancellation, lost

    bus.redis.xreadgroup = lossy  # type: ignore[method-assign]

    async def consume() -> None:
        async for _ in bus.consume("trades", ["AAPL"], group="g", consumer="c1"):
            pass

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(reading.wait(), 5)
        await asyncio.sleep(0.02)  # inside XREADGROUP's BLOCK (100 ms)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        assert task in done and task.cancelled()
        assert swallowed == 1  # the cancellation did go through the lossy call
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.close()
