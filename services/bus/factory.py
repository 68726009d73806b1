"""Pick the bus transport: Redis Streams when ``settings.redis_url`` is set, in-process otherwise."""

from __future__ import annotations

from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import Settings


def create_bus(settings: Settings) -> InProcessBus | RedisStreamsBus:
    """A new bus for ``settings`` (the caller closes it). Both satisfy the ``Bus`` protocol."""
    if settings.redis_url is not None:
        return RedisStreamsBus(settings.redis_url.get_secret_value(), settings.redis)
    return InProcessBus(settings.redis)
