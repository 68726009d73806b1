"""AnalyticsService benchmark (not a test): the RPCs over real gRPC at 1, 8 and 32 concurrent
clients, beside the core alone doing the same work in the same run.

Data goes in through the ingestion path (normalised batches into the storage ``Writer``) in a
throwaway database on the local PostgreSQL (``AIOTS_BENCH_PG``, default
postgresql://postgres@127.0.0.1:5432), dropped at the end:

* 100,000 one-minute bars of ``BENCH`` (seeded random walk);
* a 2,000-contract chain of ``BENCH`` (10 expiries x 100 strikes x call/put, American prices with
  a dividend yield and a smile, bid/ask around them), open interest, trades, 252 days of ATM IV.

Cases (9 indicators: sma ema rsi macd bbands atr adx stoch obv, default parameters):

* ``GetIndicators live``: latest values from live state (memory), core = LiveState.latest;
* ``GetIndicators full``: recomputed over 100,000 bars on every request (result cache off;
  the bars come from the service's per-data-version bars cache), core = the 9 core functions;
* ``GetIndicators cold``: the same with the bars read from PostgreSQL (first request after new data);
* ``GetOptionsAnalytics``: the 2,000-contract chain recomputed on every request (result cache off;
  per-contract IVs/Greeks from the per-data-version chain cache), core = the chain analytics over
  the enriched chain; ``GetOptionsAnalytics cold``: chain read and IVs/Greeks solved (core = the
  American IV + Greeks + analytics);
* ``GetIndicators series``: the full recompute returning the 100,000-point series and bar times
  (column-wise wire encoding), core = the 9 core functions; the naive field-by-field message build
  of the same response is timed beside it;
* ``GetVolSurface``: constrained SVI fit of the 10 expiries (cached per data version), core = ``fit_surface``;
* ``PriceOptions``: 10,000 American contracts (Bjerksund-Stensland 2002 + Greeks), core =
  american_greeks on the same arrays.

Clients run in a separate process (raw-bytes stubs: the client's own parse cost is not counted)
so client-observed latency is not inflated by the server's event loop. Server time is the time
inside the servicer method. Overhead = client p50 at 1 client / core p50.
Run: ``.venv/bin/python bench/analytics.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import numpy as np

from aiots.core import conventions as cv
from aiots.core import options as opt
from aiots.services.analytics import conversions as conv
from aiots.services.analytics import indicators as ind
from aiots.services.analytics import options_analytics as oa
from aiots.services.analytics import surface
from aiots.services.analytics.live_state import LiveState
from aiots.services.analytics.service import AnalyticsServicer
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common import event_loop
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.services.common.settings import Settings
from aiots.services.ingestion.normalize import KIND_OPTION, SYMBOLS, TABLES, Batch, occ_symbol
from aiots.services.storage import queries
from aiots.services.storage.migrate import migrate
from aiots.services.storage.writer import Writer
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' reference encoder
from tests.unit.analytics._wire_oracle import indicators_to_proto_naive

PG = os.environ.get("AIOTS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
SYM = "BENCH"
N_BARS = 100_000
N_EXPIRIES, N_STRIKES = 10, 100
N_PRICE = 10_000
RATE, DIV_YIELD = cv.DEFAULT_RATE, 0.012
NS = cv.NS_PER_S
INDICATORS = ("sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "obv")
SERVICE = "/aiots.v1.AnalyticsService/"
#: the anchors' empty unary method (bytes in, no bytes out): the gRPC floor of any RPC
FLOOR_SERVICE, FLOOR_METHOD = "aiots.bench.Floor", "Empty"
CLIENTS = (1, 8, 32)
DEFAULT_K = np.round(np.arange(-0.3, 0.3 + 1e-9, 0.05), 10)


# -- data through the ingestion path ------------------------------------------------------------------


def _cols(table: str, n: int, **values: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, dtype in TABLES[table]:
        default = np.nan if dtype == "f8" else 0
        out[name] = np.asarray(values.get(name, np.full(n, default)), dtype=dtype).reshape(n)
    return out


def bars(n: int, seed: int = 11) -> tuple[np.ndarray, ...]:
    """n consecutive one-minute bars ending at the last full minute before 2024-06-28 20:00 UTC."""
    rng = np.random.default_rng(seed)
    end = int(dt.datetime(2024, 6, 28, 19, 59, tzinfo=dt.UTC).timestamp()) * NS
    ts = end - (np.arange(n, dtype=np.int64)[::-1] * 60 * NS)
    c = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    o = np.concatenate([[c[0]], c[:-1]])
    wig = np.abs(rng.normal(0, 0.0005, n))
    h, lo = np.maximum(o, c) * (1 + wig), np.minimum(o, c) * (1 - wig)
    v = rng.lognormal(8, 0.5, n).round()
    return ts, o, h, lo, c, v


def chain(spot: float, quote_ns: int, seed: int = 5) -> list[dict[str, Any]]:
    """10 expiries x 100 strikes x C/P priced with the core's American pricer at a smile."""
    rng = np.random.default_rng(seed)
    day = dt.datetime.fromtimestamp(quote_ns / NS, dt.UTC).date()
    rows = []
    for j in range(N_EXPIRIES):
        exp = day + dt.timedelta(days=7 * (j + 1) + (4 - (day + dt.timedelta(days=7 * (j + 1))).weekday()) % 7)
        t = (cv.expiry_ns(exp) - quote_ns) / oa.YEAR_NS
        ks = np.round(spot * np.linspace(0.6, 1.4, N_STRIKES), 2)
        for right in ("C", "P"):
            vol = 0.25 + 0.25 * np.log(ks / spot) ** 2 - 0.05 * np.log(ks / spot)
            px = np.asarray(opt.american_price(spot, ks, t, RATE, vol, DIV_YIELD, right == "C"))
            spread = np.maximum(0.01, px * 0.02)
            for k, p, s in zip(ks.tolist(), px.tolist(), spread.tolist(), strict=True):
                rows.append({
                    "occ": occ_symbol(SYM, exp, right, k), "expiry": exp, "right": right, "strike": k,
                    "bid": max(round(p - s / 2, 2), 0.0), "ask": round(p + s / 2, 2) + 0.01,
                    "volume": float(rng.integers(0, 500)), "oi": float(rng.integers(1, 5000)),
                })  # fmt: skip
    return rows


async def seed(dsn: str, spill: Path) -> None:
    w = Writer(dsn, spill_dir=spill, batch_records=200_000, queue_records=400_000, application_name="aiots-bench")
    await w.start()
    ts, o, h, lo, c, v = bars(N_BARS)
    n = len(ts)
    b = Batch()
    b.add("bars_1m", _cols("bars_1m", n, sym=np.full(n, SYMBOLS.code(SYM)), ts_event=ts, open=o, high=h, low=lo,
                           close=c, volume=v, trade_count=np.zeros(n), source=np.full(n, 9)))  # fmt: skip
    await w.put(b)
    q_ns = int(ts[-1]) + 30 * NS
    rows = chain(float(c[-1]), q_ns)
    m = len(rows)
    codes = np.array([SYMBOLS.code(r["occ"]) for r in rows])
    cb = Batch()
    cb.rows["instruments"].extend(
        (r["occ"], KIND_OPTION, SYM, r["strike"], r["expiry"], r["right"], 100, "BENCH") for r in rows
    )
    cb.add("option_quotes", _cols("option_quotes", m, sym=codes, und=np.full(m, SYMBOLS.code(SYM)),
                                  ts_event=np.full(m, q_ns), bid=[r["bid"] for r in rows], ask=[r["ask"] for r in rows],
                                  underlying_price=np.full(m, c[-1]), sequence=np.arange(m), source=np.full(m, 9)))  # fmt: skip
    oi_day = dt.datetime.fromtimestamp(q_ns / NS, dt.UTC).date() - dt.timedelta(days=1)
    cb.rows["option_stats"].extend((r["occ"], SYM, oi_day, r["oi"], None, None, q_ns - 86_400 * NS) for r in rows)
    tr = [i for i, r in enumerate(rows) if r["volume"] > 0]
    cb.add("trades", _cols("trades", len(tr), sym=codes[tr], ts_event=np.full(len(tr), q_ns - NS),
                           price=[rows[i]["ask"] for i in tr], size=[rows[i]["volume"] for i in tr],
                           side=np.full(len(tr), ord("N")), sequence=np.arange(len(tr)), source=np.full(len(tr), 9)))  # fmt: skip
    cb.rows["atm_iv_history"].extend(
        (SYM, oi_day - dt.timedelta(days=i), 0.2 + 0.05 * math.sin(i / 20), float(c[-1])) for i in range(252)
    )
    await w.put(cb)
    await w.flush(120)
    assert w.stats.spilled_records == 0, "the writer spilled: is PostgreSQL healthy?"
    await w.close()


# -- client process ----------------------------------------------------------------------------------


def _client_proc(port: int, method: str, payload: bytes, clients: int, per_client: int, conn: Any) -> None:
    async def run() -> tuple[list[float], float]:
        opts = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts)
        call = ch.unary_unary(method if method.startswith("/") else SERVICE + method)
        await call(payload)  # warm the connection
        lat: list[float] = []

        async def worker() -> None:
            for _ in range(per_client):
                t0 = time.perf_counter()
                await call(payload)
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        await ch.close()
        return lat, wall

    conn.send(asyncio.run(run()))
    conn.close()


async def drive(port: int, method: str, payload: bytes, clients: int, per_client: int) -> tuple[list[float], float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_client_proc, args=(port, method, payload, clients, per_client, child))
    p.start()
    child.close()
    result: tuple[list[float], float] = await asyncio.to_thread(parent.recv)
    await asyncio.to_thread(p.join)
    return result


# -- measurement -------------------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p)) if xs else math.nan


def timed_core(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs (after one warm-up)."""
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def add_floor(_servicer: object, server: grpc.aio.Server) -> None:
    """An empty unary method (the anchor rows): what any RPC costs before the servicer's own work."""

    async def empty(request: bytes, context: Any) -> bytes:
        return b""

    handler = grpc.unary_unary_rpc_method_handler(empty)  # no (de)serialisers: bytes in and out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FLOOR_SERVICE, {FLOOR_METHOD: handler}),))


async def bare_floor_server() -> tuple[grpc.aio.Server, int]:
    """A plain ``grpc.aio`` server (no interceptors) with only the empty method."""
    server = grpc.aio.server()
    add_floor(None, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def instrument(servicer: AnalyticsServicer, sink: dict[str, list[float]]) -> None:
    """Record the time spent inside each RPC method."""
    for name in ("GetIndicators", "GetOptionsAnalytics", "GetVolSurface", "PriceOptions"):
        orig = getattr(servicer, name)

        async def timed(req: Any, ctx: Any, orig: Callable[..., Awaitable[Any]] = orig, name: str = name) -> Any:
            t0 = time.perf_counter()
            try:
                return await orig(req, ctx)
            finally:
                sink[name].append(time.perf_counter() - t0)

        setattr(servicer, name, timed)


async def main(quick: bool, client_counts: tuple[int, ...], skip: list[str]) -> None:
    db = f"aiots_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    dsn = f"{PG}/{db}"
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, timescale="off")
        await conn.close()
        with tempfile.TemporaryDirectory() as spill:
            t0 = time.perf_counter()
            await seed(dsn, Path(spill))
            print(f"seeded {N_BARS} bars + {N_EXPIRIES * N_STRIKES * 2}-contract chain through the writer "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        await run_cases(dsn, quick, client_counts, skip)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def run_cases(dsn: str, quick: bool, client_counts: tuple[int, ...], skip: list[str]) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    settings = Settings(
        symbols=[SYM],
        analytics={"live_intervals": ["1m"], "live_warmup_bars": N_BARS, "max_lookback": N_BARS,
                   "live_indicators": list(INDICATORS)},
    )  # fmt: skip
    live_rt = Runtime(settings=settings, db=pool, cache=MemoryBackend(256 << 20))
    live = LiveState(live_rt)
    t0 = time.perf_counter()
    await live.start()
    print(f"live state warmed from {N_BARS} stored bars in {time.perf_counter() - t0:.2f} s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; event loop {event_loop.loop_name()}")  # fmt: skip
    sink: dict[str, list[float]] = defaultdict(list)
    # result cache off (no cache backend): every request recomputes
    servicer = AnalyticsServicer(Runtime(settings=settings, db=pool, cache=None), live)
    instrument(servicer, sink)
    gs = await start_server(
        [ServiceRegistration.of(servicer), ServiceRegistration(FLOOR_SERVICE, add_floor, None)],
        host="127.0.0.1",
        port=0,
    )
    bare, bare_port = await bare_floor_server()
    # -- requests and the core doing the same work
    calls = ind.build_calls(list(INDICATORS), 0, [], settings.analytics.max_period)
    stored = await queries.get_bars(pool, SYM, "1m", None, None, N_BARS)
    live_req = pb.GetIndicatorsRequest(symbol=SYM, interval="1m", indicators=list(INDICATORS))
    full_req = pb.GetIndicatorsRequest(symbol=SYM, interval="1m", indicators=list(INDICATORS), lookback=N_BARS,
                                       start=cv.ns_to_pb(int(stored.ts[0])))  # fmt: skip
    chain_raw = await queries.latest_option_chain(pool, SYM)
    hist = await queries.atm_iv_history(pool, SYM, 252)
    acfg = servicer._acfg(SYM)
    enriched = oa.enrich(chain_raw, acfg)
    n_ok = int(np.isfinite(enriched.iv).sum())
    print(f"chain: {len(enriched.occ)} contracts, {n_ok} IVs solved ({enriched.pricing_model})")
    series_req = pb.GetIndicatorsRequest()
    series_req.CopyFrom(full_req)
    series_req.include_series = True
    vals = ind.compute(calls, stored)
    for name, fn in (
        ("naive message build", indicators_to_proto_naive),
        ("column-wise wire", conv.indicators_wire),
    ):
        ms = timed_core(functools.partial(fn, SYM, "1m", stored.ts, vals, True, "computed"), 3) * 1e3
        print(f"GetIndicators series response, 100k bars x 9 indicators: {name} {ms:.1f} ms")
    quotes = oa.surface_quotes(enriched, acfg.rate)
    price_req, arrays = price_contracts(N_PRICE)
    s, k, t, vol, call = arrays
    reps = 3 if quick else 7
    core = {
        "live": timed_core(lambda: live.latest(SYM, "1m", calls), 200),
        "full": timed_core(lambda: ind.compute(calls, stored), reps),
        "options": timed_core(lambda: oa.analyze(enriched, acfg, hist.iv), reps),
        "surface": timed_core(lambda: surface.fit_surface(quotes, DEFAULT_K), reps),
        "options_cold": timed_core(lambda: oa.analyze(oa.enrich(chain_raw, acfg), acfg, hist.iv), reps),
        "price": timed_core(
            lambda: opt.american_greeks(s, k, t, RATE, vol, DIV_YIELD, call, method="bjerksund_stensland_2002"), reps
        ),
    }
    floor = f"/{FLOOR_SERVICE}/{FLOOR_METHOD}"
    core["floor"] = 1e-6  # (no core work: the overhead column is not meaningful for the anchors)
    cases: list[tuple[str, str, bytes, str, int]] = [
        # (label, method, payload, core key, requests per client at 1 client)
        ("anchor: empty unary, plain grpc.aio server", "bare:" + floor, b"", "floor", 500),
        ("anchor: empty unary, the service's server", floor, b"", "floor", 500),
        ("GetIndicators live (9 ind.)", "GetIndicators", live_req.SerializeToString(), "live", 500),
        ("GetIndicators full, 100k bars", "GetIndicators", full_req.SerializeToString(), "full", 60),
        ("GetOptionsAnalytics 2,000 contracts", "GetOptionsAnalytics",
         pb.GetOptionsAnalyticsRequest(symbol=SYM).SerializeToString(), "options", 30),
        ("GetIndicators series, 100k bars", "GetIndicators", series_req.SerializeToString(), "full", 30),
        ("GetVolSurface 10 expiries", "GetVolSurface", pb.GetVolSurfaceRequest(symbol=SYM).SerializeToString(),
         "surface", 20),
        ("PriceOptions 10,000 American", "PriceOptions", price_req.SerializeToString(), "price", 8),
    ]  # fmt: skip
    cases = [c for c in cases if not skip or not any(x in c[0] for x in skip)]
    rows = []
    budget_s = 3.0 if quick else 8.0
    for label, method, payload, key, n1 in cases:
        for clients in client_counts:
            # cap the run: about budget_s of core time per (case, clients), at least one request per client
            total = min(n1 * clients, max(clients, int(budget_s / max(core[key], 1e-4))))
            per_client = max(1, total // clients)
            sink[method].clear()
            port = bare_port if method.startswith("bare:") else gs.port
            lat, wall = await drive(port, method.removeprefix("bare:"), payload, clients, per_client)
            srv = sink[method][1:]  # drop the connection warm-up call
            rows.append((label, clients, pct(lat, 50), pct(lat, 99), pct(srv, 50), pct(srv, 99), len(lat) / wall,
                         core[key], pct(lat, 50) / core[key]))  # fmt: skip
            print(f"  {label} x{clients}: {len(lat)} requests, p50 {pct(lat, 50) * 1e3:.2f} ms", flush=True)
    # cold paths: once each (first request after new data)
    cold = await cold_paths(servicer, settings, pool, full_req, core)
    await gs.stop(0)
    await bare.stop(0)
    await live.stop()
    await pool.close()
    print()
    print("| RPC | clients | client p50 ms | client p99 ms | server p50 ms | server p99 ms | QPS | core ms "
          "| overhead (client p50 / core, 1 client) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r[8]:.2f}x" if r[1] == 1 else ""
        print(f"| {r[0]} | {r[1]} | {r[2] * 1e3:.2f} | {r[3] * 1e3:.2f} | {r[4] * 1e3:.2f} | {r[5] * 1e3:.2f} | "
              f"{r[6]:.1f} | {r[7] * 1e3:.3f} | {ratio} |")  # fmt: skip
    for label, ms, core_ms in cold:
        print(f"| {label} (cold, once) | 1 | {ms:.1f} | | | | | {core_ms:.1f} | {ms / core_ms:.2f}x |")


async def cold_paths(
    servicer: AnalyticsServicer,
    settings: Settings,
    pool: Any,
    full_req: pb.GetIndicatorsRequest,
    core: dict[str, float],
) -> list[tuple[str, float, float]]:
    """First request after new data: a fresh servicer (empty bars/chain caches), in process."""
    out = []
    fresh = AnalyticsServicer(Runtime(settings=settings, db=pool, cache=None), None)
    t0 = time.perf_counter()
    await fresh.GetIndicators(full_req, None)  # type: ignore[arg-type]
    out.append(("GetIndicators full, 100k bars from PostgreSQL", (time.perf_counter() - t0) * 1e3, core["full"] * 1e3))
    t0 = time.perf_counter()
    await fresh.GetOptionsAnalytics(pb.GetOptionsAnalyticsRequest(symbol=SYM), None)  # type: ignore[arg-type]
    out.append(("GetOptionsAnalytics, chain read + IVs solved", (time.perf_counter() - t0) * 1e3,
                core["options_cold"] * 1e3))  # fmt: skip
    return out


def price_contracts(n: int) -> tuple[pb.PriceOptionsRequest, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(7)
    s = np.full(n, 100.0)
    k = rng.uniform(60, 140, n)
    t = rng.uniform(0.02, 2.0, n)
    vol = rng.uniform(0.1, 0.8, n)
    call = rng.random(n) < 0.5
    req = pb.PriceOptionsRequest()
    for i in range(n):
        req.contracts.append(
            pb.PricingInput(
                spot=s[i], strike=k[i], time_to_expiry=t[i], rate=RATE, dividend_yield=DIV_YIELD, volatility=vol[i],
                right=cpb.OPTION_RIGHT_CALL if call[i] else cpb.OPTION_RIGHT_PUT, style=cpb.EXERCISE_STYLE_AMERICAN,
            )
        )  # fmt: skip
    return req, (s, k, t, vol, call)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    ap.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="concurrent clients, e.g. 1,8,32")
    ap.add_argument("--skip", action="append", default=[], help="skip cases whose label contains this (repeatable)")
    a = ap.parse_args()
    event_loop.run_as_service(main(a.quick, tuple(int(x) for x in a.clients.split(",")), a.skip))
