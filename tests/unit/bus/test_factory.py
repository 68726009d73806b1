"""The transport follows the settings: Redis Streams with REDIS_URL, in-process without; both are
the ``Bus`` the services are typed against (every method of the Protocol, same parameters)."""

from __future__ import annotations

import inspect

from aiots.services.bus.factory import create_bus
from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.ports import Bus
from aiots.services.common.settings import Settings


def test_redis_url_picks_redis_streams() -> None:
    assert isinstance(create_bus(Settings(redis_url=None)), InProcessBus)
    assert isinstance(create_bus(Settings(redis_url="redis://127.0.0.1:1/0")), RedisStreamsBus)  # not connected yet


def test_both_transports_implement_every_bus_method() -> None:
    methods = {n: f for n, f in vars(Bus).items() if inspect.isfunction(f) and not n.startswith("_")}
    assert {"publish", "publish_many", "consume", "ack", "broadcast", "listen", "close"} <= set(methods)
    for cls in (InProcessBus, RedisStreamsBus):
        for name, proto in methods.items():
            impl = getattr(cls, name, None)
            assert impl is not None, f"{cls.__name__} lacks {name}"
            want = list(inspect.signature(proto).parameters)
            assert list(inspect.signature(impl).parameters)[: len(want)] == want, f"{cls.__name__}.{name}"
