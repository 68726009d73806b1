"""``aiots quote`` against a real in-process cache service (click's runner, real gRPC)."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from aiots.services.cache.app import create_app
from aiots.services.cache.prices import price_book_for
from aiots.services.cli.quote import cli
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings

T0 = 1_767_364_200_000_000_000  # 2026-01-02 09:30 America/New_York


async def test_quote_text_json_and_not_found(redis_ns: str) -> None:
    rt = Runtime(settings=Settings(redis={"namespace": redis_ns}, symbols=["AAPL"]))
    app = await create_app(rt, port=0)
    await app.start()
    try:
        p = price_book_for(rt)
        await p.set_prev_close("AAPL", 200.0)
        await p.on_trade("AAPL", T0, 202.5, 100)
        target = f"127.0.0.1:{app.port}"
        runner = CliRunner()

        def run(*args: str) -> object:
            return runner.invoke(cli, [*args, "--target", target])

        res = await asyncio.to_thread(run, "aapl")
        assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
        out = res.output  # type: ignore[attr-defined]
        assert "AAPL  202.50  +2.50 (+1.25%)" in out and "2026-01-02 09:30:00 EST" in out
        res = await asyncio.to_thread(run, "AAPL", "--json")
        doc = json.loads(res.output)  # type: ignore[attr-defined]
        assert doc["symbol"] == "AAPL" and doc["last"] == 202.5 and doc["change_pct"] == pytest.approx(1.25)
        res = await asyncio.to_thread(run, "NOPE")
        assert res.exit_code == 1  # type: ignore[attr-defined]
        assert "NOT_FOUND" in res.output and "NOPE" in res.output  # type: ignore[attr-defined]
        res = await asyncio.to_thread(run, "")
        assert res.exit_code == 1 and "INVALID_ARGUMENT" in res.output  # type: ignore[attr-defined]
    finally:
        await app.stop()
