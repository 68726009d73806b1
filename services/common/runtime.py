"""What a running service needs besides its settings: storage, cache and bus handles, the feed.

In the embedded mode (no REDIS_URL) the in-process cache and bus only work inside one process,
so ``aiots up`` runs all services in one asyncio process sharing one :class:`Runtime`; with Redis
each service may run in its own process (``aiots serve NAME``) or as replicas.

Each service package exposes ``async def create_app(rt: Runtime, *, port: int | None = None)
-> ServiceApp`` in ``aiots.services.<name>.app``. The composition root that builds the runtime
and starts the apps is :mod:`aiots.services.stack` (above every service; nothing here imports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from aiots.services.common.ports import Bus, CacheBackend
from aiots.services.common.settings import Settings

if TYPE_CHECKING:  # asyncpg is a runtime dependency; the name is only needed for the annotation
    import asyncpg

T = TypeVar("T")

FeedKind = Literal["simulator", "replay", "live"]


class ServiceApp(Protocol):
    """A started-or-startable service: gRPC server plus its background tasks."""

    name: str

    @property
    def port(self) -> int: ...

    async def start(self) -> None:
        """Bind the gRPC server and start background tasks."""

    async def stop(self) -> None:
        """Stop background tasks, flush, then stop the server (within the grace period)."""


@dataclass(frozen=True)
class FeedSpec:
    """The market feed ingestion runs: the simulator, a replay of DBN files, or Databento Live.

    ``speed``: 0 as fast as possible, 1 the recorded (or real-time) pace, N times faster.
    """

    kind: FeedKind = "simulator"
    replay_files: tuple[Path, ...] = ()
    speed: float = 1.0


@dataclass
class Runtime:
    """Shared handles: an asyncpg pool, a cache backend, an event bus, the feed, and process-wide
    components shared between services of one process (typed by class, see :meth:`component`)."""

    settings: Settings
    db: asyncpg.Pool | None = None
    cache: CacheBackend | None = None
    bus: Bus | None = None
    feed: FeedSpec = field(default_factory=FeedSpec)
    database_dsn: str | None = None
    _components: dict[type, object] = field(default_factory=dict, repr=False)

    def need_bus(self, who: str) -> Bus:
        """The bus, or RuntimeError naming ``who`` needs it (the composition root always sets one)."""
        if self.bus is None:
            raise RuntimeError(f"{who} needs an event bus: start it through aiots.services.stack")
        return self.bus

    def component(self, kind: type[T]) -> T | None:
        """The shared instance of ``kind`` registered by an earlier service of this process, if any."""
        obj = self._components.get(kind)
        return obj if isinstance(obj, kind) else None

    def register(self, obj: T) -> T:
        """Share ``obj`` with the later services of this process (one instance per class)."""
        self._components[type(obj)] = obj
        return obj
