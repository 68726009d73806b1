"""`aiots db migrate|status` and `aiots replay` against a throwaway database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from aiots.services.cli.main import cli
from aiots.services.common.settings import get_settings


@pytest.fixture
def env(make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    dsn = make_database(False)
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("AIOTS_INGESTION__SPILL_DIR", str(tmp_path / "spill"))
    get_settings.cache_clear()
    yield dsn  # type: ignore[misc]
    get_settings.cache_clear()


def test_db_migrate_status_and_replay(env: str, shared_data: Path) -> None:
    r = CliRunner()
    out = r.invoke(cli, ["db", "status"])
    assert out.exit_code == 0, out.output
    assert "pending" in out.output
    out = r.invoke(cli, ["db", "migrate"])
    assert out.exit_code == 0 and "applied migrations 1, 2, 3" in out.output, out.output
    out = r.invoke(cli, ["db", "migrate"])
    assert "up to date" in out.output
    f = shared_data / "dbn/databento-python/XNAS.ITCH/test_data.trades.dbn.zst"
    out = r.invoke(cli, ["replay", str(f)])
    assert out.exit_code == 0 and "trades 4" in out.output.replace("\n", " "), out.output
    out = r.invoke(cli, ["replay", "--speed", "0", str(f)])
    assert "trades 0" in out.output.replace("\n", " "), out.output

    async def count() -> int:
        c = await asyncpg.connect(env)
        try:
            return int(await c.fetchval("SELECT count(*) FROM trades"))
        finally:
            await c.close()

    import asyncio

    assert asyncio.run(count()) == 4
