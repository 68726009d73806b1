"""Polling helper for integration tests that wait on another process or a background task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

POLL_S = 0.05


async def until(cond: Callable[[], Any], limit_s: float) -> float:
    """Seconds until ``cond()`` (awaited when it returns a coroutine) is truthy; fails the test
    after ``limit_s``."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < limit_s, "condition not met in time"
        await asyncio.sleep(POLL_S)
