"""Live state through a real gRPC channel: bars go through the ingestion pipeline (storage writer
and in-process bus), the service folds them into core streams, GetIndicators answers the latest
values from memory (source "live"), and a restart on the same cache answers identical values.

Oracle: TA-Lib over the same bars (default parameters of each indicator).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import talib

from aiots.services.analytics.app import AnalyticsApp
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.storage.writer import Writer
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import analytics_pb2_grpc as pbg

from .conftest import NS, NY, bars_batch

pytestmark = pytest.mark.integration

SYMBOL = "LIVEQ"
N_BARS = 400
WARMUP = 50  # smaller than N_BARS: values equal over all N_BARS only if the checkpoint was used


def _values(resp: pb.GetIndicatorsResponse) -> dict[str, list[tuple[str, float]]]:
    return {r.name: [(o.name, o.value) for o in r.outputs] for r in resp.results}


async def _started(rt: Runtime) -> tuple[AnalyticsApp, grpc.aio.Channel, pbg.AnalyticsServiceStub]:
    app = AnalyticsApp(rt, port=0, live=True)
    await app.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    return app, ch, pbg.AnalyticsServiceStub(ch)


async def test_live_indicators_through_grpc_and_restart(seeded_pool: Any, writer: Writer, shared_data: Path) -> None:

    with (shared_data / "ohlcv" / "NVDA_1m_2024-03-01_2024-03-14.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:N_BARS]
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("open", "high", "low", "close", "volume")}
    ts = [int(dt.datetime.fromisoformat(r["datetime"]).replace(tzinfo=NY).timestamp()) * NS for r in rows]
    settings = Settings(
        symbols=[SYMBOL],
        analytics={"live_intervals": ["1m"], "checkpoint_interval_s": 60, "live_warmup_bars": WARMUP},
    )
    cache = MemoryBackend(16 << 20)
    bus = InProcessBus(settings.redis)
    app, ch, stub = await _started(Runtime(settings=settings, db=seeded_pool, cache=cache, bus=bus))
    try:
        # nothing stored or seen yet: the symbol is unknown
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await stub.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m"))
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        # the ingestion path: storage writer + bars:1m events on the bus
        pipe = Pipeline(writer=writer, bus=bus, build_bars=False)

        async def fold(lo: int, hi: int) -> None:
            for a in range(lo, hi, 100):
                sl = slice(a, min(a + 100, hi))
                await pipe.process(
                    bars_batch(
                        "bars_1m", SYMBOL, ts[sl], *(cols[k][sl] for k in ("open", "high", "low", "close", "volume"))
                    )
                )
            await writer.flush(30.0)
            for _ in range(500):
                st = app.live.state.get((SYMBOL, "1m"))
                if st is not None and st.bars >= hi:
                    break
                await asyncio.sleep(0.01)

        # one bar short: the answer is kept for the same request until the next bar, then renewed
        await fold(0, N_BARS - 1)
        early = [await stub.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m")) for _ in range(2)]
        assert early[0] == early[1] and early[0].as_of.seconds * NS == ts[-2]
        assert _values(early[0])["sma"][0][1] == pytest.approx(talib.SMA(cols["close"][:-1], 30)[-1], rel=1e-12)
        await fold(N_BARS - 1, N_BARS)
        assert app.live.state[SYMBOL, "1m"].bars == N_BARS
        live = await stub.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m"))
        assert live.source == "live" and live.as_of.seconds * NS == ts[-1]
        c = cols["close"]
        want = {
            "sma": [("sma", talib.SMA(c, 30)[-1])],
            "ema": [("ema", talib.EMA(c, 30)[-1])],
            "rsi": [("rsi", talib.RSI(c, 14)[-1])],
            "macd": list(zip(("macd", "macdsignal", "macdhist"), (x[-1] for x in talib.MACD(c, 12, 26, 9)),
                             strict=True)),
            "bbands": list(zip(("upperband", "middleband", "lowerband"),
                               (x[-1] for x in talib.BBANDS(c, 20, 2.0, 2.0)), strict=True)),
        }  # fmt: skip
        got = _values(live)
        assert set(got) == set(want)
        for name, outs in want.items():
            assert [n for n, _ in got[name]] == [n for n, _ in outs]
            for (_, g), (_, w) in zip(got[name], outs, strict=True):
                assert g == pytest.approx(w, rel=1e-12, abs=1e-12), name
        # the same bars recomputed from storage (series requested: not a live answer) agree
        full = await stub.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m", include_series=True))
        assert full.source == "computed" and full.bars == N_BARS
        for name, outs in _values(full).items():
            for (_, g), (_, w) in zip(outs, got[name], strict=True):
                assert g == pytest.approx(w, rel=1e-12, abs=1e-12), name
        # non-default parameters are never served from memory
        p = await stub.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m", indicators=["sma"],
                                                             period=7))  # fmt: skip
        assert p.source == "computed"
        assert p.results[0].outputs[0].value == pytest.approx(talib.SMA(c, 7)[-1], rel=1e-12)
    finally:
        await ch.close()
        await app.stop()  # writes the checkpoint

    # restart on the same cache (fresh bus: no bar is replayed): identical values, still from memory
    bus2 = InProcessBus(settings.redis)
    app2, ch2, stub2 = await _started(Runtime(settings=settings, db=seeded_pool, cache=cache, bus=bus2))
    try:
        assert app2.live.state[SYMBOL, "1m"].bars == N_BARS  # resumed, not re-warmed from WARMUP stored bars
        again = await stub2.GetIndicators(pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m"))
        assert again.source == "live"
        assert again.as_of == live.as_of
        assert _values(again) == got
    finally:
        await ch2.close()
        await app2.stop()
        await bus.close()
        await bus2.close()
