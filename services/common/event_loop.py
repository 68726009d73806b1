"""The event loop a service process runs on (``Settings.event_loop``).

``uvloop`` (the default) is asyncio's loop on libuv, written in Cython: grpc.aio spends a call's
Python time mostly in loop callbacks, futures and tasks, and they cost less there. Measured on the
2-core VM (``bench/cache.py --only loop``, the real cache service behind h2load): about 10-25% more
GetStockPrice calls per second from one process, at less server CPU per call. ``asyncio`` is the
standard library's loop (the one pytest's tests run on); a platform without uvloop (Windows) falls
back to it with a warning.

Only processes that serve (``aiots up``, ``aiots serve`` and its workers, and the benchmarks'
server side) take the setting; the CLI's one-shot clients keep :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
EventLoopKind = Literal["uvloop", "asyncio"]

log = logging.getLogger(__name__)


def loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new loop of ``kind`` (asyncio's when uvloop can't be imported)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # not installed on this platform
            log.warning("event_loop=uvloop but uvloop is not installed here: running on asyncio's loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """Run ``main`` to completion on a new loop of ``kind`` and close it, as :func:`asyncio.run`
    does (same cancellation of leftover tasks and shutdown of async generators and executors)."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)


def run_as_service(main: Coroutine[Any, Any, T]) -> T:
    """:func:`run` on the loop the process-wide settings give services (what ``aiots up`` runs on);
    the benchmarks run their server side so."""
    from aiots.services.common.settings import get_settings

    return run(main, get_settings().event_loop)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: which loop runs ``loop`` (default: the running one)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
