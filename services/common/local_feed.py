"""Objects handed from a producer to consumers in the same process as they are (no serialisation).

When two services share one process (``aiots up`` without Redis runs them all in one), a consumer
of a topic can take the producer's objects directly instead of the bus's bytes: no serialise, no
parse, no bus hop. The producer still publishes every event on the bus (other processes and
replicas, recorders). Shared through :meth:`aiots.services.common.runtime.Runtime.component`:
``LocalFeed.of(rt)``. A consumer uses the local feed only when a producer of its topic runs in
this process (:meth:`has_producer`) and otherwise consumes the bus as before.

Delivery is in order and awaited: the producer's next object waits until every listener has
handled this one (a listener's failure is logged, never raised to the producer). A listener runs
as the service that registered it (:data:`~aiots.services.common.instruments.current_service`), so
what it counts lands in its own service's metrics, not the producer's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiots.services.common.instruments import current_service
from aiots.services.common.runtime import Runtime

log = logging.getLogger(__name__)

Listener = Callable[[Any], Awaitable[None]]


class LocalFeed:
    """In-process topics: which have a producer here, and who listens (see module docstring)."""

    def __init__(self) -> None:
        self._producers: dict[str, int] = {}
        self._listeners: dict[str, list[tuple[Listener, str]]] = {}

    @classmethod
    def of(cls, rt: Runtime) -> LocalFeed:
        """The process-wide feed of ``rt`` (created on first use)."""
        return rt.component(cls) or rt.register(cls())

    def produces(self, topic: str) -> Callable[[], None]:
        """Declare a producer of ``topic`` in this process; returns its withdrawal."""
        self._producers[topic] = self._producers.get(topic, 0) + 1

        def withdraw() -> None:
            left = self._producers.get(topic, 0) - 1
            if left > 0:
                self._producers[topic] = left
            else:
                self._producers.pop(topic, None)

        return withdraw

    def has_producer(self, topic: str) -> bool:
        return self._producers.get(topic, 0) > 0

    def listen(self, topic: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each object delivered on ``topic``, as the calling service; returns
        the unsubscribe."""
        entry = (listener, current_service.get())
        self._listeners.setdefault(topic, []).append(entry)

        def unsubscribe() -> None:
            ls = self._listeners.get(topic, [])
            if entry in ls:
                ls.remove(entry)

        return unsubscribe

    def listening(self, topic: str) -> bool:
        return bool(self._listeners.get(topic))

    async def deliver(self, topic: str, obj: Any) -> None:
        """Hand ``obj`` to every listener of ``topic``, in turn."""
        for listener, service in tuple(self._listeners.get(topic, ())):
            token = current_service.set(service)
            try:
                await listener(obj)
            except Exception:
                log.exception("local feed: a listener of %s failed", topic)
            finally:
                current_service.reset(token)
