"""live.market_open follows the NYSE calendar (hand-derived holidays and hours)."""

from __future__ import annotations

import datetime as dt

from aiots.core.conventions import NY
from aiots.services.ingestion.sources.live import market_open


def test_market_open_follows_the_calendar() -> None:
    assert market_open(dt.datetime(2026, 1, 20, 10, 0, tzinfo=NY))  # Tuesday
    assert not market_open(dt.datetime(2026, 1, 19, 10, 0, tzinfo=NY))  # Martin Luther King Jr. Day
    assert not market_open(dt.datetime(2026, 4, 3, 10, 0, tzinfo=NY))  # Good Friday
    assert not market_open(dt.datetime(2026, 1, 17, 10, 0, tzinfo=NY))  # Saturday
    assert market_open(dt.datetime(2026, 1, 20, 4, 0, tzinfo=NY)) and not market_open(
        dt.datetime(2026, 1, 20, 3, 59, tzinfo=NY)
    )
    assert market_open(dt.datetime(2025, 11, 28, 14, 0, tzinfo=NY))  # post-market after the 13:00 early close
    assert not market_open(dt.datetime(2026, 1, 20, 20, 0, tzinfo=NY))
