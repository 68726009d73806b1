"""Bar and option-quote files as replay steps (``aiots up --replay``), and the lockstep settle.

Oracle: the files themselves, read here with the csv module: each bar is published at its close
and each quote bar at its end (start + 1 minute, New York time), quotes before bars at one instant,
an empty bid or ask stays "no quote" (NaN), never zero.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from aiots.core.conventions import NS_PER_MIN, ny_ns
from aiots.services.backtest.readers import DataFileError
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.settings import RedisSettings, Settings
from aiots.services.ingestion.normalize import SYMBOLS, Batch
from aiots.services.ingestion.sources.replay import bus_settle, replay_steps
from aiots.services.stack.replay import is_dbn, read_steps
from aiots.services.stack.supervisor import Feed, Supervisor, SupervisorError
from aiots.v1 import events_pb2

BARS = "ohlcv/lean_GOOG_1m_2015-12-23_2015-12-28.csv"
QUOTES = "options-intraday/lean_GOOG_options_1m_quotes_2015-12-23.csv"


def _ns(text: str) -> int:
    t = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return ny_ns(t.date(), t.time())


def test_steps_follow_the_backtest_clock_on_real_goog_files(shared_data: Path) -> None:
    with open(shared_data / BARS, newline="") as f:
        bars = list(csv.DictReader(f))
    with open(shared_data / QUOTES, newline="") as f:
        quotes = list(csv.DictReader(f))
    steps = read_steps([shared_data / BARS, shared_data / QUOTES])

    times = [t for t, _ in steps]
    assert times == sorted(times)
    kinds = [("option_quotes" in b.columns, "bars_1m" in b.columns) for _, b in steps]
    assert all(q != b for q, b in kinds)  # one kind per step
    for i in range(1, len(steps)):  # at one instant the quotes come first
        if times[i] == times[i - 1]:
            assert kinds[i - 1][0] and kinds[i][1]
    assert sum(b.count("option_quotes") for _, b in steps) == len(quotes)
    assert sum(b.count("bars_1m") for _, b in steps) == len(bars)

    by_time = {(t, "option_quotes" in b.columns): b for t, b in steps}
    row = bars[500]
    close = _ns(row["datetime"]) + NS_PER_MIN
    b = by_time[(close, False)].columns["bars_1m"]
    assert b["ts_event"].tolist() == [_ns(row["datetime"])]  # stamped at its start, published at its close
    assert [b[k][0] for k in ("open", "high", "low", "close", "volume")] == [
        float(row[k]) for k in ("open", "high", "low", "close", "volume")
    ]
    assert SYMBOLS.symbol(int(b["sym"][0])) == "GOOG"

    no_bid = next(r for r in quotes if r["bid_close"] == "")
    end = _ns(no_bid["datetime"]) + NS_PER_MIN
    q = by_time[(end, True)].columns["option_quotes"]
    i = [SYMBOLS.symbol(int(c)) for c in q["sym"]].index(no_bid["option_symbol"])
    assert math.isnan(q["bid"][i]) and q["ask"][i] == float(no_bid["ask_close"])
    assert q["ts_event"][i] == end and SYMBOLS.symbol(int(q["und"][i])) == "GOOG"
    assert not is_dbn(shared_data / QUOTES)


def test_daily_bars_and_bad_files_are_refused_with_file_row_column(tmp_path: Path) -> None:
    daily = tmp_path / "d.csv"
    daily.write_text("date,symbol,open,high,low,close,volume\n2024-01-02,SPY,1,2,0.5,1.5,10\n")
    with pytest.raises(ValueError, match="only 1-minute bars"):
        read_steps([daily])
    bad = tmp_path / "b.csv"
    bad.write_text("datetime,symbol,open,high,low,close,volume\n2024-01-02 09:30:00,SPY,1,2,0.5,abc,10\n")
    with pytest.raises(DataFileError, match=r"b\.csv, row 1 \(line 2\), column 'close'"):
        read_steps([bad])


class _Sink:
    """A pipeline stand-in that publishes each step's rows as trade events on the bus."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    async def process(self, batch: Batch) -> None:
        n = batch.count()
        await self.bus.publish_many("t", [("K", events_pb2.TradeEvent(sequence=i)) for i in range(n)])

    async def close_bars(self) -> None:
        return None


async def test_lockstep_waits_for_the_consumer_between_steps() -> None:
    bus = InProcessBus(RedisSettings(namespace="u", read_batch=1))
    seen: list[tuple[int, int]] = []  # (step index the replay was at, event) as the consumer handles it
    at = [0]

    async def consume() -> None:
        async for d in bus.consume("t", ["K"], group="g", consumer="c"):
            seen.append((at[0], events_pb2.TradeEvent.FromString(d.payload).sequence))
            await bus.ack(d, group="g")

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    settle = bus_settle(bus)
    assert settle is not None

    async def counting_settle() -> None:
        await settle()
        at[0] += 1

    def batch(n: int) -> Batch:
        b = Batch()
        b.add("bars_1m", {"sym": np.zeros(n, np.int32)})
        return b

    res = await replay_steps([(1, batch(3)), (2, batch(2))], _Sink(bus), settle=counting_settle)  # type: ignore[arg-type]
    assert res.records == 5
    # every event of step k was handled before step k + 1 was published
    assert seen == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    task.cancel()
    await bus.close()


async def test_a_bad_replay_file_stops_the_start_naming_file_row_column(tmp_path: Path) -> None:
    bad = tmp_path / "bars.csv"
    bad.write_text("datetime,symbol,open,high,low,close,volume\n2024-01-02 09:30:00,SPY,1,2,0.5,abc,10\n")
    sup = Supervisor(
        Settings(), services=[], gateway=False, metrics=False, feed=Feed(kind="replay", replay_files=[bad])
    )
    with pytest.raises(SupervisorError, match=r"bars\.csv, row 1 \(line 2\), column 'close'"):
        await sup.start()


def test_speed_zero_is_for_a_replay_only(tmp_path: Path) -> None:
    with pytest.raises(SupervisorError, match="replay feed only"):
        Feed(kind="simulator", speed=0.0).resolve(Settings())
    f = tmp_path / "bars.csv"
    f.write_text("datetime,symbol,open,high,low,close,volume\n")
    assert Feed(kind="auto", replay_files=[f], speed=0.0).resolve(Settings()).speed == 0.0
