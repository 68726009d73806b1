"""LocalFeed: one instance per runtime, producers counted per topic, listeners called in order and
awaited, a failing listener neither reaches the producer nor stops the others."""

from __future__ import annotations

import logging

import pytest

from aiots.services.common.instruments import current_service
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings


def test_one_feed_per_runtime() -> None:
    rt = Runtime(settings=Settings())
    assert LocalFeed.of(rt) is LocalFeed.of(rt)
    assert LocalFeed.of(Runtime(settings=Settings())) is not LocalFeed.of(rt)


def test_producers_are_counted_per_topic() -> None:
    feed = LocalFeed()
    first = feed.produces("features:1m")
    second = feed.produces("features:1m")
    assert feed.has_producer("features:1m") and not feed.has_producer("bars:1m")
    first()
    assert feed.has_producer("features:1m")  # the second producer is still there
    second()
    assert not feed.has_producer("features:1m")


async def test_listeners_in_order_each_awaited_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    feed = LocalFeed()
    seen: list[tuple[str, object]] = []

    async def first(obj: object) -> None:
        seen.append(("first", obj))

    async def broken(obj: object) -> None:
        raise RuntimeError("listener bug")

    async def last(obj: object) -> None:
        seen.append(("last", obj))

    assert not feed.listening("t")
    feed.listen("t", first)
    feed.listen("t", broken)
    stop_last = feed.listen("t", last)
    assert feed.listening("t")
    with caplog.at_level(logging.ERROR):
        await feed.deliver("t", 1)  # the broken listener is logged, not raised
        await feed.deliver("t", 2)
    assert seen == [("first", 1), ("last", 1), ("first", 2), ("last", 2)]
    assert sum("a listener of t failed" in r.getMessage() for r in caplog.records) == 2
    await feed.deliver("other", 3)  # nobody listens there
    stop_last()
    stop_last()  # idempotent
    await feed.deliver("t", 4)
    assert seen[-1] == ("first", 4) and ("last", 4) not in seen


async def test_a_listener_runs_as_the_service_that_registered_it() -> None:
    """Metrics a listener records carry its own service label (signals' candidates counted on the
    signals port), and the producer's label is back after the delivery."""
    feed = LocalFeed()
    seen: list[str] = []

    async def record(obj: object) -> None:
        seen.append(current_service.get())

    token = current_service.set("signals")
    try:
        feed.listen("features:1m", record)
    finally:
        current_service.reset(token)
    token = current_service.set("analytics")
    try:
        await feed.deliver("features:1m", object())
        assert current_service.get() == "analytics"
    finally:
        current_service.reset(token)
    assert seen == ["signals"]
