"""Event bus: typed protobuf events between services (Redis Streams or in-process)."""

from aiots.services.bus.base import Bus, Delivery, Handler, stream_name

__all__ = ["Bus", "Delivery", "Handler", "stream_name"]
