"""The pipeline feeds the cache's PriceBook: after replaying real DBN samples, CacheService.GetStockPrice
(through a real gRPC channel) shows the last trade, bid/ask, session open/high/low and volume. The
oracle is computed independently from the same files with databento's ``DBNStore.to_df``."""

from __future__ import annotations

import warnings
from pathlib import Path

import databento as db
import grpc
import numpy as np
import pandas as pd
import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.app import create_app
from aiots.services.cache.prices import price_book_for
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import replay_files
from aiots.v1 import cache_pb2, cache_pb2_grpc, events_pb2

warnings.filterwarnings("ignore", module="databento")
DP = "dbn/databento-python"
# quotes first: the book moves bid/ask only for updates at least as new as its snapshot
FILES = {
    "NVDA": ("XNAS.ITCH/test_data.mbp-1", "XNAS.ITCH/test_data.trades"),
    "QQQ": ("EQUS.MINI/test_data.mbp-1", "EQUS.MINI/test_data.trades"),
}


def _oracle(shared_data: Path, quotes: str, trades: str) -> dict[str, float]:
    q = db.DBNStore.from_file(shared_data / f"{DP}/{quotes}.dbn.zst").to_df()
    t = db.DBNStore.from_file(shared_data / f"{DP}/{trades}.dbn.zst").to_df()
    t = t[t["action"] == "T"]
    last_t = t.iloc[int(np.flatnonzero(t["ts_event"] == t["ts_event"].max())[-1])]
    last_q = q.iloc[int(np.flatnonzero(q["ts_event"] == q["ts_event"].max())[-1])]
    return {
        "last": float(last_t["price"]),
        "open": float(t.sort_values("ts_event", kind="stable")["price"].iloc[0]),
        "high": float(t["price"].max()),
        "low": float(t["price"].min()),
        "volume": float(t["size"].sum()),
        "bid": 0.0 if pd.isna(last_q["bid_px_00"]) else float(last_q["bid_px_00"]),
        "ask": 0.0 if pd.isna(last_q["ask_px_00"]) else float(last_q["ask_px_00"]),
        "as_of": int(pd.Timestamp(max(t["ts_event"].max(), q["ts_event"].max())).value),
    }


async def test_get_stock_price_after_replay_matches_to_df(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    rt = Runtime(settings=Settings(symbols=list(FILES)), bus=InProcessBus())
    app = await create_app(rt, port=0)
    await app.start()
    try:
        pipe = Pipeline(bus=rt.bus, prices=price_book_for(rt), source=3, build_bars=False)
        for quotes, trades in FILES.values():
            await replay_files([shared_data / f"{DP}/{quotes}.dbn.zst"], pipe)
            await replay_files([shared_data / f"{DP}/{trades}.dbn.zst"], pipe)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = cache_pb2_grpc.CacheServiceStub(ch)
            for sym, (quotes, trades) in FILES.items():
                want = _oracle(shared_data, quotes, trades)
                p = (await stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol=sym.lower()))).price
                assert p.symbol == sym
                for k in ("last", "open", "high", "low", "volume", "bid", "ask"):
                    assert getattr(p, k) == pytest.approx(want[k], abs=1e-9), (sym, k)
                assert p.as_of.ToNanoseconds() == want["as_of"]
    finally:
        await app.stop()


async def test_option_only_replay_takes_underlying_price_from_the_cache(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An option-only file has no stock prices: underlying_price comes from the cache's latest AAPL price."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    f = shared_data / f"{DP}/OPRA.PILLAR/test_data.cbbo-1s.dbn.zst"
    n = len(db.DBNStore.from_file(f).to_df())
    got: dict[str, list[float]] = {}
    for label, spot in (("cached", 231.25), ("none", None)):
        rt = Runtime(settings=Settings(symbols=["AAPL"]), bus=InProcessBus())
        app = await create_app(rt, port=0)
        await app.start()
        try:
            book = price_book_for(rt)
            if spot is not None:
                await book.on_trade("AAPL", 1_740_000_000 * 10**9, spot, 100.0)
            await rt.bus.ensure_group("options:quotes", ["AAPL"], group="t", start="$")
            await replay_files([f], Pipeline(bus=rt.bus, prices=book, source=3, build_bars=False))
            ups = []
            async for d in rt.bus.consume("options:quotes", ["AAPL"], group="t", consumer="c"):
                ups.append(events_pb2.OptionQuoteEvent.FromString(d.payload).underlying_price)
                if len(ups) == n:
                    break
            got[label] = ups
        finally:
            await app.stop()
    assert got["cached"] == [231.25] * n
    assert got["none"] == [0.0] * n  # unknown: 0 on the bus (NULL in storage)
