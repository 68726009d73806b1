"""The interfaces in ``ports`` are what the implementations offer: every Protocol method exists on
each transport and cache backend, with the Protocol's parameters (names, in order, first)."""

from __future__ import annotations

import inspect

import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.cache.backends.redis import RedisBackend
from aiots.services.common.ports import Bus, CacheBackend


@pytest.mark.parametrize(
    ("proto", "impl"),
    [(Bus, InProcessBus), (Bus, RedisStreamsBus), (CacheBackend, MemoryBackend), (CacheBackend, RedisBackend)],
)
def test_implementations_offer_every_protocol_method(proto: type, impl: type) -> None:
    methods = {n: f for n, f in vars(proto).items() if inspect.isfunction(f) and not n.startswith("_")}
    assert len(methods) >= 5, "the Protocol scan found too few methods"
    for name, want_fn in methods.items():
        got = getattr(impl, name, None)
        assert got is not None, f"{impl.__name__} lacks {name}"
        want = list(inspect.signature(want_fn).parameters)
        assert list(inspect.signature(got).parameters)[: len(want)] == want, f"{impl.__name__}.{name}"
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want_fn) or name in ("consume", "listen")


async def test_an_event_serialised_once_travels_as_the_message_would() -> None:
    from aiots.services.common.ports import event_bytes
    from aiots.services.common.settings import RedisSettings
    from aiots.v1 import events_pb2

    ev = events_pb2.SignalEvent(symbol="AAPL", ts_event=5, is_update=True)
    raw = ev.SerializeToString()
    assert event_bytes(ev) == raw and event_bytes(raw) is raw
    bus = InProcessBus(RedisSettings())
    listener = bus.listen("ch")
    start = getattr(listener, "start", None)
    if start is not None:
        await start()
    await bus.broadcast("ch", raw)
    await bus.broadcast("ch", ev)
    it = listener.__aiter__()
    assert [await it.__anext__(), await it.__anext__()] == [raw, raw]
    await bus.close()
