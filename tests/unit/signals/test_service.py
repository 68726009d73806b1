"""SignalService request parsing: comma-separated lists, filters checked against the configured
symbols and strategies, ``since`` as a ULID or an RFC 3339 time with an offset."""

from __future__ import annotations

import datetime as dt

import pytest

from aiots.services.common.errors import InvalidArgument
from aiots.services.signals.fanout import Broker
from aiots.services.signals.service import SignalServicer, split_csv


def _servicer() -> SignalServicer:
    return SignalServicer(None, Broker(4), symbols=["AAPL", "SPY"], strategies=["momentum_breakout"], heartbeat_s=1.0)  # type: ignore[arg-type]


def test_lists_and_filters() -> None:
    assert split_csv(["AAPL,msft", " ", "qqq "]) == ["AAPL", "msft", "qqq"]
    f = _servicer()._filter(["aapl,SPY"], ["momentum_breakout"], 0.5)
    assert (f.symbols, f.strategies, f.min_confidence) == (("AAPL", "SPY"), ("momentum_breakout",), 0.5)
    with pytest.raises(InvalidArgument, match=r"unknown symbol\(s\) \['MSFT'\]; supported: AAPL, SPY"):
        _servicer()._filter(["MSFT"], [], 0.0)
    with pytest.raises(InvalidArgument, match=r"must be within 0\.\.1, got 1\.5"):
        _servicer()._filter([], [], 1.5)


def test_since_is_a_ulid_or_an_offset_time() -> None:
    ulid = "01jh3z8e9x5k2v7q4r6t8w0y1z"
    assert SignalServicer._since(ulid) == (ulid.upper(), None)
    at = dt.datetime(2025, 1, 2, 15, 30, 0, 123456, tzinfo=dt.UTC)
    assert SignalServicer._since("2025-01-02T15:30:00.123456Z") == (None, int(at.timestamp()) * 10**9 + 123_456_000)
    assert SignalServicer._since("") == (None, None)
    with pytest.raises(InvalidArgument, match="needs a UTC offset"):
        SignalServicer._since("2025-01-02T15:30:00")
    with pytest.raises(InvalidArgument, match="must be a signal id"):
        SignalServicer._since("yesterday")
