"""Spans and latency for asyncpg and redis.asyncio calls (their classes' methods wrapped once per
process), and the publish counter of a bus instance."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

from aiots.services.common.instruments import MAX_STATEMENT_CHARS, current_service, metrics, tracer

_ASYNCPG_METHODS = (
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_records_to_table",
    "copy_to_table",
    "copy_from_query",
    "copy_from_table",
)
_WRITE_METHODS = frozenset({"executemany", "copy_records_to_table", "copy_to_table"})
_instrumented: set[str] = set()


def _db_wrap(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        stmt = args[0] if args and isinstance(args[0], str) else None
        table = stmt if name.startswith("copy_") and stmt else kwargs.get("table_name")
        start = time.perf_counter()
        with tracer().start_as_current_span(f"postgresql.{name}", kind=SpanKind.CLIENT, record_exception=True) as sp:
            sp.set_attribute("db.system", "postgresql")
            sp.set_attribute("db.operation", name)
            sp.set_attribute("aiots.service", current_service.get())
            if stmt and not name.startswith("copy_"):
                sp.set_attribute("db.statement", stmt[:MAX_STATEMENT_CHARS])
            if table:
                sp.set_attribute("db.sql.table", str(table))
            try:
                return await fn(self, *args, **kwargs)
            except Exception:
                metrics.db_errors.add(1, {"operation": name})
                if name in _WRITE_METHODS:
                    metrics.db_write_failures.add(1, {"table": str(table or "unknown")})
                raise
            finally:
                metrics.db_query_duration.record(time.perf_counter() - start, {"operation": name})

    return wrapper


def instrument_asyncpg() -> None:
    """Spans + latency for asyncpg ``Connection`` calls (pool calls go through them). Idempotent."""
    if "asyncpg" in _instrumented:
        return
    try:
        from asyncpg.connection import Connection
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return
    for name in _ASYNCPG_METHODS:
        fn = getattr(Connection, name, None)
        if fn is not None:
            setattr(Connection, name, _db_wrap(name, fn))
    _instrumented.add("asyncpg")


def instrument_bus(bus: Any) -> None:
    """Count what is published on ``bus`` (``aiots_bus_published_total`` by topic, labelled with the
    publishing service: the context of the RPC or of the task the service spawned). Wraps the instance's
    ``publish``/``publish_many`` once; neither calls the other in either transport."""
    if getattr(bus, "_aiots_instrumented", False):
        return
    publish = bus.publish
    publish_many = bus.publish_many

    async def counted_publish(topic: str, key: str, event: Any) -> Any:
        out = await publish(topic, key, event)
        metrics.bus_published.add(1, {"topic": topic})
        return out

    async def counted_publish_many(topic: str, items: Sequence[Any]) -> None:
        await publish_many(topic, items)
        metrics.bus_published.add(len(items), {"topic": topic})

    bus.publish = counted_publish
    bus.publish_many = counted_publish_many
    bus._aiots_instrumented = True


def instrument_redis() -> None:
    """Spans + latency for redis.asyncio commands and pipelines. Idempotent."""
    if "redis" in _instrumented:
        return
    try:
        from redis.asyncio.client import Pipeline, Redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return
    orig_cmd: Callable[..., Awaitable[Any]] = Redis.execute_command
    orig_pipe = Pipeline.execute

    @functools.wraps(orig_cmd)
    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        command = str(args[0]).upper() if args else "?"
        start = time.perf_counter()
        with tracer().start_as_current_span(f"redis.{command}", kind=SpanKind.CLIENT) as sp:
            sp.set_attribute("db.system", "redis")
            sp.set_attribute("db.operation", command)
            sp.set_attribute("aiots.service", current_service.get())
            try:
                return await orig_cmd(self, *args, **options)
            finally:
                metrics.redis_command_duration.record(time.perf_counter() - start, {"command": command})

    @functools.wraps(orig_pipe)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        with tracer().start_as_current_span("redis.PIPELINE", kind=SpanKind.CLIENT) as sp:
            sp.set_attribute("db.system", "redis")
            sp.set_attribute("db.operation", "PIPELINE")
            sp.set_attribute("aiots.service", current_service.get())
            try:
                return await orig_pipe(self, *args, **kwargs)
            finally:
                metrics.redis_command_duration.record(time.perf_counter() - start, {"command": "PIPELINE"})

    Redis.execute_command = execute_command  # type: ignore[method-assign]
    Pipeline.execute = execute  # type: ignore[method-assign]
    _instrumented.add("redis")
