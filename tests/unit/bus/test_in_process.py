"""In-process bus specifics (no servers): partitioning, MAXLEN trimming, closed bus."""

from __future__ import annotations

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
