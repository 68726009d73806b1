"""The interfaces the runtime holds: the event bus and the cache backend (their one home).

Transports implement them in :mod:`aiots.services.bus` (Redis Streams + pub/sub, in-process) and
:mod:`aiots.services.cache.backends` (Redis, in-process); see those modules for the guarantees.
Values are bytes (serialised protobuf); TTLs are seconds (float, ``None`` = no expiry).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from google.protobuf.message import Message


class Delivery(NamedTuple):
    """One delivered message: its stream, transport id, key and payload bytes (immutable)."""

    stream: str
    message_id: str
    key: str
    payload: bytes


Handler = Callable[[Delivery], Awaitable[None]]


#: an event message, or its serialised bytes (sent as they are: an event going to a topic and a
#: channel is serialised once)
Event = Message | bytes


def event_bytes(event: Event) -> bytes:
    """The wire bytes of ``event``."""
    return event if isinstance(event, bytes) else event.SerializeToString()


class Bus(Protocol):
    """Publish/consume (streams with consumer groups) and broadcast/listen (pub/sub)."""

    async def publish(self, topic: str, key: str, event: Event) -> str:
        """Append ``event`` to the stream of (topic, key); returns the message id."""

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Event]]) -> None:
        """Append several (key, event) pairs in one round trip where the transport allows."""

    def consume(
        self,
        topic: str,
        keys: Sequence[str],
        *,
        group: str,
        consumer: str,
        start: str = "$",
    ) -> AsyncIterator[Delivery]:
        """Yield messages of (topic, key) for ``keys`` as member ``consumer`` of ``group``.

        ``start`` is where a new group begins: ``"$"`` (new messages) or ``"0"`` (all retained).
        The caller must ``ack`` each delivery after processing it.
        """

    async def ensure_group(self, topic: str, keys: Sequence[str], *, group: str, start: str = "$") -> None:
        """Create ``group`` on the streams of (topic, keys) now (idempotent).

        ``consume`` creates its groups on first iteration; call this first when messages
        published before that first iteration must reach the group.
        """

    async def drop_group(self, topic: str, keys: Sequence[str], *, group: str) -> None:
        """Delete ``group`` from the streams of (topic, keys) (a replica's own group, on its stop)."""

    async def ack(self, delivery: Delivery, *, group: str) -> None:
        """Acknowledge a processed delivery."""

    async def broadcast(self, channel: str, event: Event) -> None:
        """Send ``event`` to every current listener of ``channel``."""

    def listen(self, channel: str) -> AsyncIterator[bytes]:
        """Yield payloads broadcast on ``channel`` from now on."""

    async def close(self) -> None:
        """Release connections and stop background tasks."""


@dataclass(frozen=True)
class CacheStats:
    """Counters since this backend object was created (Redis: keys/memory/evictions from INFO)."""

    hits: int
    misses: int
    keys: int
    memory_bytes: int
    evictions: int
    backend: str

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CacheBackend(Protocol):
    """Byte values with TTLs; ``get_many``/``set_many`` are one round trip on Redis."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in ``keys`` order (None where absent)."""

    async def get_with_ttl(self, key: str) -> tuple[bytes, float | None] | None:
        """The value and its remaining TTL in seconds (None: no expiry), or None when absent."""

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value``; ``ttl_s`` None means no expiry."""

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        """Store several (key, value, ttl_s)."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when something was removed."""

    async def stats(self) -> CacheStats:
        """Counters and sizes."""

    async def ping(self) -> bool:
        """True when the store answers."""

    async def close(self) -> None:
        """Release connections."""
