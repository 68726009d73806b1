"""Analytics' live state hands its snapshots to in-process consumers (the signals service under
``aiots up``) with the very values the ``features:1m`` event carries.

Oracle: the bus event of the same bar, decoded as the signals service decodes it
(:func:`snapshot_from_event`), field by field and bit for bit (NaN while warming up included), over
400 real NVDA 1-minute bars; and a local listener that is not attached gets nothing.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import math
import struct
from pathlib import Path
from typing import Any

from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.features.conversions import snapshot_from_event
from aiots.services.features.state import Bar, Snapshot
from aiots.v1 import events_pb2
from tests.unit.analytics.test_live_state import nvda_bar_events

NS = 1_000_000_000
TOPIC = "features:1m"


def _bits(v: Any) -> Any:
    """A float as its IEEE-754 bytes (NaN equals NaN, -0.0 differs from 0.0); other values as they are."""
    return struct.pack("<d", v) if isinstance(v, float) else v


def _fields(s: Snapshot) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        if f.name == "iv_source":
            continue
        v = getattr(s, f.name)
        out[f.name] = (
            tuple(_bits(getattr(v, g.name)) for g in dataclasses.fields(v)) if isinstance(v, Bar) else _bits(v)
        )
    return out


async def test_local_snapshots_equal_the_bus_events(shared_data: Path) -> None:
    with (shared_data / "ohlcv" / "NVDA_1m_2024-03-01_2024-03-14.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:400]
    settings = Settings(symbols=["NVDA"], analytics={"live_intervals": ["1m"]})
    bus = InProcessBus(settings.redis)
    rt = Runtime(settings=settings, bus=bus)
    feed = LocalFeed.of(rt)
    assert not feed.has_producer(TOPIC)
    live = LiveState(rt)
    await live.start()
    assert feed.has_producer(TOPIC)  # a consumer of this process may take the snapshots from here
    local: list[Snapshot] = []
    params: list[events_pb2.FeatureParams] = []

    async def take(item: tuple[Snapshot, events_pb2.FeatureParams]) -> None:
        local.append(item[0])
        params.append(item[1])

    unlisten = feed.listen(TOPIC, take)
    over_bus: list[events_pb2.FeatureEvent] = []

    async def follow() -> None:
        async for d in bus.consume(TOPIC, ["NVDA"], group="test", consumer="test", start="0"):
            over_bus.append(events_pb2.FeatureEvent.FromString(d.payload))
            await bus.ack(d, group="test")

    reader = asyncio.create_task(follow())
    events = nvda_bar_events(rows)
    await bus.publish_many("bars:1m", events[:200])
    for _ in range(500):
        if len(over_bus) >= 200:
            break
        await asyncio.sleep(0.01)
    unlisten()  # a listener that left gets nothing more
    await bus.publish_many("bars:1m", events[200:])
    for _ in range(500):
        if len(over_bus) >= len(rows):
            break
        await asyncio.sleep(0.01)
    reader.cancel()
    await live.stop()
    assert not feed.has_producer(TOPIC)
    await bus.close()

    assert len(over_bus) == len(rows) and len(local) == 200
    assert any(math.isnan(s.adx) for s in local) and any(math.isfinite(s.adx) for s in local)  # warm-up and after
    for snap, ev in zip(local, over_bus, strict=False):
        assert _fields(snap) == _fields(snapshot_from_event(ev))
        assert ev.params == params[0]
