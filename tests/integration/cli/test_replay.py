"""`aiots replay` of the backtest's CSV files: every bar and every option quote row is stored once (a
second replay adds nothing), an empty bid stays NULL (no quote), never 0.

Oracles: the files' row counts (the csv module) and PROVENANCE.md section 7a (the 2015-12-23 GOOG
quote file: 28932 rows, 8749 without a bid, 2970 without an ask).
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from aiots.services.cli.main import cli
from aiots.services.common.settings import get_settings

pytestmark = pytest.mark.integration

BARS = "ohlcv/lean_GOOG_1m_2015-12-23_2015-12-28.csv"
QUOTES = "options-intraday/lean_GOOG_options_1m_quotes_2015-12-23.csv"


@pytest.fixture
def dsn(make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    d = make_database(True)
    for k in ("REDIS_URL", "DATABENTO_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DATABASE_URL", d)
    monkeypatch.setenv("AIOTS_INGESTION__SPILL_DIR", str(tmp_path / "spill"))
    get_settings.cache_clear()
    yield d
    get_settings.cache_clear()


async def _counts(dsn: str) -> tuple[int, int, int, int]:
    c = await asyncpg.connect(dsn)
    try:
        bars = int(await c.fetchval("SELECT count(*) FROM bars_1m WHERE symbol = 'GOOG'"))
        row = await c.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE bid IS NULL), count(*) FILTER (WHERE ask IS NULL) "
            "FROM option_quotes WHERE underlying = 'GOOG'"
        )
        assert row is not None
        return bars, int(row[0]), int(row[1]), int(row[2])
    finally:
        await c.close()


def test_replay_stores_every_bar_and_quote_row(dsn: str, shared_data: Path) -> None:
    with open(shared_data / BARS, newline="") as f:
        n_bars = sum(1 for _ in csv.DictReader(f))
    for _ in range(2):  # twice: stored once
        out = CliRunner().invoke(cli, ["replay", str(shared_data / BARS), str(shared_data / QUOTES)])
        assert out.exit_code == 0, out.output
        assert asyncio.run(_counts(dsn)) == (n_bars, 28932, 8749, 2970)


def test_replay_of_a_bad_csv_names_file_row_column(dsn: str, tmp_path: Path) -> None:
    bad = tmp_path / "bars.csv"
    bad.write_text("datetime,symbol,open,high,low,close,volume\n2024-01-02 09:30:00,SPY,1,2,0.5,abc,10\n")
    out = CliRunner().invoke(cli, ["replay", str(bad)])
    assert out.exit_code == 1 and "bars.csv, row 1 (line 2), column 'close'" in out.output, out.output
