"""One contract suite for both bus transports (in-process and Redis Streams on the real Redis).

Oracle: the published sequence itself (sequence numbers put into the events by the test) and the
guarantees written in aiots.services.bus.base: at-least-once per group, order per stream, work
sharing within a group, redelivery of a dead consumer's unacked messages, pub/sub fan-out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiots.services.bus.base import Delivery, partition_keys
from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.errors import InvalidArgument
from aiots.services.common.settings import RedisSettings
from aiots.v1 import events_pb2

pytestmark = pytest.mark.timeout(60)

FAST = {"claim_idle_ms": 200, "claim_interval_s": 0.1, "read_block_ms": 100, "read_batch": 16}


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    ns = request.getfixturevalue("redis_ns")

    def make(**overrides: Any) -> Any:
        cfg = RedisSettings(namespace=ns, **{**FAST, **overrides})
        bus = RedisStreamsBus(url, cfg) if request.param == "redis" else InProcessBus(cfg)
        if made and request.param == "memory":
            bus = made[0]  # in-process: one bus per process, shared by every consumer
        made.append(bus)
        return bus

    yield make
    for b in {id(b): b for b in made}.values():
        await b.close()


def trade(symbol: str, seq: int) -> events_pb2.TradeEvent:
    return events_pb2.TradeEvent(symbol=symbol, ts_event=1_700_000_000_000_000_000 + seq, price=100.0, sequence=seq)


def seq_of(d: Delivery) -> int:
    return int(events_pb2.TradeEvent.FromString(d.payload).sequence)


async def take(it: AsyncIterator[Delivery], n: int, limit_s: float = 10.0) -> list[Delivery]:
    out: list[Delivery] = []

    async def run() -> None:
        async for d in it:
            out.append(d)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), limit_s)
    return out


def topic() -> str:
    return f"trades-{uuid.uuid4().hex[:6]}"


async def test_publish_consume_in_order_and_ack(make_bus: Callable[..., Any]) -> None:
    bus = make_bus()
    t = topic()
    ids = [await bus.publish(t, "AAPL", trade("AAPL", i)) for i in range(20)]
    assert len(set(ids)) == 20
    it = bus.consume(t, ["AAPL"], group="g", consumer="c1", start="0")
    got = await take(it, 20)
    assert [seq_of(d) for d in got] == list(range(20))
    assert {d.key for d in got} == {"AAPL"}
    assert [d.message_id for d in got] == ids
    assert await bus.pending_count(t, "AAPL", "g") == 20
    for d in got:
        await bus.ack(d, group="g")
    await bus.ack(got[0], group="g")  # idempotent
    if hasattr(bus, "flush"):
        await bus.flush()
    assert await bus.pending_count(t, "AAPL", "g") == 0
    await it.aclose()


async def test_publish_many_and_start_dollar_after_ensure_group(make_bus: Callable[..., Any]) -> None:
    bus = make_bus()
    t = topic()
    await bus.publish(t, "MSFT", trade("MSFT", 999))  # before the group: not seen with "$"
    await bus.ensure_group(t, ["MSFT", "NVDA"], group="g", start="$")
    await bus.publish_many(t, [("MSFT" if i % 2 else "NVDA", trade("X", i)) for i in range(10)])
    got = await take(bus.consume(t, ["MSFT", "NVDA"], group="g", consumer="c"), 10)
    assert sorted(seq_of(d) for d in got) == list(range(10))
    for key in ("MSFT", "NVDA"):
        per_key = [seq_of(d) for d in got if d.key == key]
        assert per_key == sorted(per_key)


async def test_drop_group_forgets_it_and_a_new_group_starts_at_the_newest_entry(
    make_bus: Callable[..., Any],
) -> None:
    bus = make_bus()
    t = topic()
    await bus.ensure_group(t, ["SPY"], group="mine", start="0")
    await bus.publish_many(t, [("SPY", trade("SPY", i)) for i in range(5)])
    await bus.drop_group(t, ["SPY", "NEVER"], group="mine")  # a stream that never existed is no error
    await bus.drop_group(t, ["SPY"], group="absent")  # nor is a group that does not exist
    # the group is gone: created again with "$", it sees only what comes after
    await bus.ensure_group(t, ["SPY"], group="mine", start="$")
    await bus.publish(t, "SPY", trade("SPY", 99))
    got = await take(bus.consume(t, ["SPY"], group="mine", consumer="c"), 1)
    assert [seq_of(d) for d in got] == [99]


async def test_two_groups_each_get_everything(make_bus: Callable[..., Any]) -> None:
    bus = make_bus()
    t = topic()
    await bus.publish_many(t, [("SPY", trade("SPY", i)) for i in range(30)])
    a = await take(bus.consume(t, ["SPY"], group="analytics", consumer="a", start="0"), 30)
    s = await take(bus.consume(t, ["SPY"], group="signals", consumer="s", start="0"), 30)
    assert [seq_of(d) for d in a] == [seq_of(d) for d in s] == list(range(30))


async def test_consumers_of_a_group_share_the_work(make_bus: Callable[..., Any]) -> None:
    bus1, bus2 = make_bus(), make_bus()
    t = topic()
    keys = ["AAPL", "MSFT", "TSLA"]
    n = 300
    await bus1.ensure_group(t, keys, group="g")
    got: dict[str, list[int]] = {"c1": [], "c2": []}
    done = asyncio.Event()

    async def run(bus: Any, name: str) -> None:
        async for d in bus.consume(t, keys, group="g", consumer=name):
            got[name].append(seq_of(d))
            await bus.ack(d, group="g")
            if len(got["c1"]) + len(got["c2"]) >= n:
                done.set()
            await asyncio.sleep(0.001)  # slow handler: the other consumer gets batches too

    tasks = [asyncio.create_task(run(bus1, "c1")), asyncio.create_task(run(bus2, "c2"))]
    await asyncio.sleep(0.2)
    for i in range(0, n, 10):
        await bus1.publish_many(t, [(keys[j % 3], trade("X", j)) for j in range(i, i + 10)])
        await asyncio.sleep(0.005)
    await asyncio.wait_for(done.wait(), 20)
    for task in tasks:
        task.cancel()
    allseq = got["c1"] + got["c2"]
    assert sorted(allseq) == list(range(n)), "each message exactly once within the group (no crash)"
    assert got["c1"] and got["c2"], "both consumers got work"


async def test_dead_consumer_messages_are_redelivered(make_bus: Callable[..., Any]) -> None:
    bus1, bus2 = make_bus(), make_bus()
    t = topic()
    await bus1.publish_many(t, [("META", trade("META", i)) for i in range(8)])
    dead = bus1.consume(t, ["META"], group="g", consumer="dead", start="0")
    first = await take(dead, 8)  # received, never acked
    await dead.aclose()  # the consumer dies
    survivor = bus2.consume(t, ["META"], group="g", consumer="alive")
    again = await take(survivor, 8, limit_s=15)
    assert sorted(seq_of(d) for d in again) == [seq_of(d) for d in first] == list(range(8))
    for d in again:
        await bus2.ack(d, group="g")
    if hasattr(bus2, "flush"):
        await bus2.flush()
    assert await bus2.pending_count(t, "META", "g") == 0
    await survivor.aclose()


async def test_a_dead_consumers_messages_on_every_stream_are_redelivered(make_bus: Callable[..., Any]) -> None:
    """The reclaim covers each of the consumer's streams (Redis: one XAUTOCLAIM per stream, sent
    together), each message once."""
    bus1, bus2 = make_bus(), make_bus()
    t = topic()
    keys = ["AAPL", "MSFT", "NVDA"]
    await bus1.publish_many(t, [(keys[i % 3], trade(keys[i % 3], i)) for i in range(9)])
    dead = bus1.consume(t, keys, group="g", consumer="dead", start="0")
    first = await take(dead, 9)  # received, never acked
    await dead.aclose()
    survivor = bus2.consume(t, keys, group="g", consumer="alive")
    again = await take(survivor, 9, limit_s=15)
    assert sorted(seq_of(d) for d in again) == sorted(seq_of(d) for d in first) == list(range(9))
    assert {d.key for d in again} == set(keys)
    await survivor.aclose()


async def test_restarted_consumer_gets_its_own_pending_back(make_bus: Callable[..., Any]) -> None:
    bus = make_bus(claim_idle_ms=60_000)  # no idle reclaim: only the restart path can redeliver
    t = topic()
    await bus.publish_many(t, [("QQQ", trade("QQQ", i)) for i in range(5)])
    it = bus.consume(t, ["QQQ"], group="g", consumer="worker-1", start="0")
    got = await take(it, 5)
    await bus.ack(got[0], group="g")
    await it.aclose()
    it2 = bus.consume(t, ["QQQ"], group="g", consumer="worker-1")
    again = await take(it2, 4)
    assert [seq_of(d) for d in again] == [1, 2, 3, 4]
    await it2.aclose()


async def test_per_key_order_with_partitioned_replicas(make_bus: Callable[..., Any]) -> None:
    """Two replicas split the symbols (partition_keys): each symbol's events arrive in order."""
    bus1, bus2 = make_bus(), make_bus()
    t = topic()
    symbols = ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ"]
    parts = [partition_keys(symbols, i, 2) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(symbols) and not set(parts[0]) & set(parts[1])
    n_per = 40
    await bus1.publish_many(t, [(s, trade(s, i)) for i in range(n_per) for s in symbols])
    seen: dict[str, list[int]] = {}
    for bus, keys, name in ((bus1, parts[0], "r0"), (bus2, parts[1], "r1")):
        for d in await take(bus.consume(t, keys, group="g", consumer=name, start="0"), n_per * len(keys)):
            seen.setdefault(d.key, []).append(seq_of(d))
            await bus.ack(d, group="g")
    assert seen == {s: list(range(n_per)) for s in symbols}


async def test_broadcast_reaches_every_listener(make_bus: Callable[..., Any]) -> None:
    bus1, bus2 = make_bus(), make_bus()
    ch = f"ch-{uuid.uuid4().hex[:6]}"
    late_msg = trade("AAPL", 0)
    await bus1.broadcast(ch, late_msg)  # nobody listening: lost (fire-and-forget)
    l1, l2 = bus1.listen(ch), bus2.listen(ch)
    await l1.start()
    await l2.start()
    for i in range(1, 4):
        await bus1.broadcast(ch, trade("AAPL", i))

    async def first3(sub: Any) -> list[int]:
        out = []
        async for p in sub:
            out.append(events_pb2.TradeEvent.FromString(p).sequence)
            if len(out) == 3:
                return out
        return out

    assert await asyncio.wait_for(first3(l1), 5) == [1, 2, 3]
    assert await asyncio.wait_for(first3(l2), 5) == [1, 2, 3]
    await l1.aclose()
    await l2.aclose()


async def test_bad_input(make_bus: Callable[..., Any]) -> None:
    bus = make_bus()
    with pytest.raises(InvalidArgument, match="key"):
        await bus.publish("trades", "", trade("X", 0))
    with pytest.raises(InvalidArgument, match="key"):
        await bus.publish_many("trades", [("", trade("X", 0))])
    with pytest.raises(InvalidArgument, match="keys"):
        await anext(bus.consume("trades", [], group="g", consumer="c"))
    with pytest.raises(InvalidArgument, match="start"):
        await bus.ensure_group("trades", ["AAPL"], group="g", start="yesterday")
