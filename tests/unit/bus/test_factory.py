"""The transport follows the settings: Redis Streams with REDIS_URL, in-process without; both are
the ``Bus`` the services are typed against (tests/unit/common/test_ports.py)."""

from __future__ import annotations

from aiots.services.bus.factory import create_bus
from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import Settings


def test_redis_url_picks_redis_streams() -> None:
    assert isinstance(create_bus(Settings(redis_url=None)), InProcessBus)
    assert isinstance(create_bus(Settings(redis_url="redis://127.0.0.1:1/0")), RedisStreamsBus)  # not connected yet
