"""Supervisor: a service whose start() fails half-way is stopped with the rest (no stray tasks)."""

from __future__ import annotations

import asyncio
import importlib
import types
from typing import Any

import pytest

from aiots.services.common.settings import Settings
from aiots.services.stack import supervisor as sup_mod
from aiots.services.stack.supervisor import Supervisor, SupervisorError


class HalfStarted:
    """Spawns its background task, then cannot bind its port."""

    name = "cache"
    port = 0

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    async def start(self) -> None:
        self.task = asyncio.create_task(asyncio.Event().wait())
        raise OSError("address already in use")

    async def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()


async def test_failed_start_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    app = HalfStarted()
    real = importlib.import_module

    async def create_app(rt: Any) -> HalfStarted:
        return app

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == "aiots.services.storage.pool":  # no database for this test
            raise ModuleNotFoundError(name=name)
        if name == "aiots.services.cache.app":
            return types.SimpleNamespace(create_app=create_app)
        return real(name, package)

    monkeypatch.setattr(sup_mod.importlib, "import_module", fake_import)
    sup = Supervisor(Settings(), services=["cache"], gateway=False, metrics=False)
    with pytest.raises(SupervisorError, match="address already in use"):
        await sup.start()
    assert app.stopped
    assert app.task is not None
    await asyncio.wait([app.task], timeout=5)
    assert app.task.cancelled()
