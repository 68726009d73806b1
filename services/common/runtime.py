"""What a running service needs besides its settings: storage, cache and bus handles.

In the embedded mode (no REDIS_URL) the in-process cache and bus only work inside one process,
so ``aiots up`` runs all four services in one asyncio process sharing one :class:`Runtime`;
with Redis each service may run in its own process (``aiots serve NAME``) or as replicas.

Each service package exposes ``async def create_app(rt: Runtime, *, port: int | None = None)
-> ServiceApp`` in ``aiots.services.<name>.app``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aiots.services.common.settings import Settings


class ServiceApp(Protocol):
    """A started-or-startable service: gRPC server plus its background tasks."""

    name: str

    @property
    def port(self) -> int: ...

    async def start(self) -> None:
        """Bind the gRPC server and start background tasks."""

    async def stop(self) -> None:
        """Stop background tasks, flush, then stop the server (within the grace period)."""


@dataclass
class Runtime:
    """Shared handles. ``db`` is an asyncpg pool, ``cache`` a cache backend, ``bus`` an event bus.

    Typed loosely here to keep ``common`` free of imports from the other service packages.
    """

    settings: Settings
    db: Any = None
    cache: Any = None
    bus: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
