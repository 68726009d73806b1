"""A real Envoy (via aiots.gateway.run.Gateway) in front of four real grpc.aio servers.

The upstreams are minimal servicers subclassing the generated ``*Servicer`` bases: they return
canned answers that echo what they received, so tests can check that each REST binding reached
the right RPC with the right fields. The gateway is the thing under test, not the services.

Everything upstream runs on an asyncio loop in a background thread so synchronous and async
tests can share one stack per module.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.common.settings import Settings
from aiots.v1 import (
    analytics_pb2 as apb,
)
from aiots.v1 import (
    analytics_pb2_grpc as apb_grpc,
)
from aiots.v1 import (
    cache_pb2 as cpb,
)
from aiots.v1 import (
    cache_pb2_grpc as cpb_grpc,
)
from aiots.v1 import (
    common_pb2,
)
from aiots.v1 import (
    ingestion_pb2 as ipb,
)
from aiots.v1 import (
    ingestion_pb2_grpc as ipb_grpc,
)
from aiots.v1 import (
    signals_pb2 as spb,
)
from aiots.v1 import (
    signals_pb2_grpc as spb_grpc,
)
from tests.integration.gateway.ports import gateway_settings

T = TypeVar("T")
STREAM_GAP_S = 0.4
AS_OF = timestamp_pb2.Timestamp(seconds=1_700_000_000)
PACE_HEADER = "x-test-pace"
PACE_TIMEOUT_S = 20.0


class Pacer:
    """Lets a test release a stream's messages one at a time: a call carrying ``x-test-pace: NAME``
    sends its next message only after ``release(NAME)``. A gateway that buffered the stream would
    never deliver the first message, so the test needs no clock to tell streaming from buffering."""

    def __init__(self) -> None:
        self._gates: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()
        self.timeouts: list[str] = []
        self.paced: set[str] = set()  # calls whose header reached the server

    def _gate(self, name: str) -> threading.Semaphore:
        with self._lock:
            return self._gates.setdefault(name, threading.Semaphore(0))

    def release(self, name: str) -> None:
        self._gate(name).release()

    async def between_messages(self, context: Any) -> None:
        """Before every message but the first: wait for the test (paced calls) or STREAM_GAP_S."""
        name = dict(context.invocation_metadata() or ()).get(PACE_HEADER)
        if name is None:
            await asyncio.sleep(STREAM_GAP_S)
            return
        self.paced.add(name)
        if not await asyncio.to_thread(self._gate(name).acquire, True, PACE_TIMEOUT_S):
            self.timeouts.append(name)


PACER = Pacer()


class Audit:
    """What the upstreams saw: (method, subject, role) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []

    def record(self, method: str, context: grpc.aio.ServicerContext) -> None:
        md = dict(context.invocation_metadata() or ())
        self.calls.append((method, md.get("x-aiots-subject"), md.get("x-aiots-role")))


AUDIT = Audit()


class Cache(cpb_grpc.CacheServiceServicer):
    def __init__(self) -> None:
        self.store: dict[str, tuple[struct_pb2.Value, int]] = {}

    async def GetStockPrice(self, request: Any, context: Any) -> Any:
        AUDIT.record("GetStockPrice", context)
        if request.symbol.upper() == "NOPE":
            raise NotFound("no price for symbol 'NOPE'; tracked: AAPL, MSFT", metadata={"symbol": "NOPE"})
        return cpb.GetStockPriceResponse(
            price=cpb.StockPrice(symbol=request.symbol.upper(), last=190.5, bid=190.4, ask=190.6, as_of=AS_OF)
        )

    async def GetStockPrices(self, request: Any, context: Any) -> Any:
        syms = [s for e in request.symbols for s in e.split(",") if s]
        return cpb.GetStockPricesResponse(
            prices=[cpb.StockPrice(symbol=s, last=1.0) for s in syms if s != "NOPE"],
            missing=[s for s in syms if s == "NOPE"],
        )

    async def SetAnalytics(self, request: Any, context: Any) -> Any:
        AUDIT.record("SetAnalytics", context)
        self.store[request.key] = (request.data, request.ttl)
        return cpb.SetAnalyticsResponse(key=request.key, expires_at=timestamp_pb2.Timestamp(seconds=1_700_000_300))

    async def GetAnalytics(self, request: Any, context: Any) -> Any:
        if request.key not in self.store:
            raise NotFound(f"no analytics under key {request.key!r}")
        data, ttl = self.store[request.key]
        return cpb.GetAnalyticsResponse(key=request.key, data=data, ttl_remaining=ttl)

    async def DeleteAnalytics(self, request: Any, context: Any) -> Any:
        return cpb.DeleteAnalyticsResponse(deleted=self.store.pop(request.key, None) is not None)

    async def GetStats(self, request: Any, context: Any) -> Any:
        return cpb.GetStatsResponse(hits=12345678901, misses=1, hit_ratio=0.5, backend="memory")

    async def WatchPrices(self, request: Any, context: Any) -> AsyncIterator[Any]:
        syms = [s for e in request.symbols for s in e.split(",") if s] or ["AAPL"]
        for i in range(3):
            if i:
                await PACER.between_messages(context)
            yield cpb.WatchPricesResponse(price=cpb.StockPrice(symbol=syms[i % len(syms)], last=100.0 + i))


class Analytics(apb_grpc.AnalyticsServiceServicer):
    async def GetIndicators(self, request: Any, context: Any) -> Any:
        AUDIT.record("GetIndicators", context)
        names = [n for e in request.indicators for n in e.split(",") if n]
        return apb.GetIndicatorsResponse(
            symbol=request.symbol,
            interval=request.interval or "1d",
            bars=request.period,
            as_of=AS_OF,
            results=[apb.IndicatorResult(name=n, params={"period": float(request.period)}) for n in names],
            source="computed",
        )

    async def GetPatterns(self, request: Any, context: Any) -> Any:
        return apb.GetPatternsResponse(
            symbol=request.symbol, trend=apb.Trend(direction="up", slope=float(request.days))
        )

    async def GetOptionsAnalytics(self, request: Any, context: Any) -> Any:
        return apb.GetOptionsAnalyticsResponse(symbol=request.symbol, zero_gamma_level=float("nan"))

    async def GetOptionChain(self, request: Any, context: Any) -> Any:
        return apb.GetOptionChainResponse(
            symbol=request.symbol,
            contracts=[apb.OptionQuote(contract=common_pb2.OptionContract(expiry=request.expiry or "2026-12-18"))],
        )

    async def PriceOptions(self, request: Any, context: Any) -> Any:
        AUDIT.record("PriceOptions", context)
        if not request.contracts:
            raise InvalidArgument("contracts", "must hold 1..100000 contracts, got 0")
        return apb.PriceOptionsResponse(results=[apb.PricingResult(price=c.spot - c.strike) for c in request.contracts])

    async def ImpliedVolatility(self, request: Any, context: Any) -> Any:
        return apb.ImpliedVolatilityResponse(
            results=[apb.ImpliedVolatilityResult(implied_volatility=0.2) for _ in request.quotes]
        )

    async def GetVolSurface(self, request: Any, context: Any) -> Any:
        return apb.GetVolSurfaceResponse(
            symbol=request.symbol, grid=[apb.SurfacePoint(moneyness=k, iv=0.2) for k in request.moneyness]
        )


class Ingestion(ipb_grpc.IngestionServiceServicer):
    async def StartCollection(self, request: Any, context: Any) -> Any:
        AUDIT.record("StartCollection", context)
        return ipb.StartCollectionResponse(
            job_id="job-1",
            started=True,
            source=ipb.DATA_SOURCE_SIMULATOR,
            message=f"{','.join(request.symbols)} x {','.join(request.schemas)}",
        )

    async def StopCollection(self, request: Any, context: Any) -> Any:
        return ipb.StopCollectionResponse(job_ids=["job-1"], records_flushed=42)

    async def GetCollectionStatus(self, request: Any, context: Any) -> Any:
        return ipb.GetCollectionStatusResponse(running=True, streams=[ipb.StreamStatus(symbol="AAPL", schema="trades")])

    async def Backfill(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for i in range(1, 4):
            if i > 1:
                await PACER.between_messages(context)
            yield ipb.BackfillResponse(job_id="bf-1", chunks_done=i, chunks_total=3, done=i == 3)

    async def GetBars(self, request: Any, context: Any) -> Any:
        return ipb.GetBarsResponse(bars=[common_pb2.Bar(symbol=request.symbol, close=float(request.limit))])

    async def GetTrades(self, request: Any, context: Any) -> Any:
        return ipb.GetTradesResponse(trades=[common_pb2.Trade(symbol=request.symbol)])

    async def ListInstruments(self, request: Any, context: Any) -> Any:
        return ipb.ListInstrumentsResponse(
            instruments=[common_pb2.Instrument(symbol=request.underlying or "AAPL")],
            page=common_pb2.PageResponse(next_page_token=request.page.page_token + "x"),
        )

    async def GetOptionChainDefinitions(self, request: Any, context: Any) -> Any:
        return ipb.GetOptionChainDefinitionsResponse(
            contracts=[common_pb2.OptionContract(underlying=request.symbol, expiry=request.expiry)]
        )


class Signals(spb_grpc.SignalServiceServicer):
    async def SubscribeSignals(self, request: Any, context: Any) -> AsyncIterator[Any]:
        AUDIT.record("SubscribeSignals", context)
        syms = [s for e in request.symbols for s in e.split(",") if s] or ["AAPL"]
        for i in range(3):
            if i:
                await PACER.between_messages(context)
            if i == 1 and "fail" in request.strategies:
                raise ResourceExhausted("subscriber queue overflow; resume with since=sig-0")
            yield spb.SubscribeSignalsResponse(signal=spb.Signal(id=f"sig-{i}", symbol=syms[i % len(syms)]))

    async def ListSignals(self, request: Any, context: Any) -> Any:
        AUDIT.record("ListSignals", context)
        return spb.ListSignalsResponse(
            signals=[spb.Signal(id="sig-0", symbol=s, status=st) for s in request.symbols for st in request.statuses]
        )

    async def GetSignal(self, request: Any, context: Any) -> Any:
        return spb.GetSignalResponse(signal=spb.Signal(id=request.id, direction=spb.DIRECTION_BULLISH))

    async def GetSignalStats(self, request: Any, context: Any) -> Any:
        return spb.GetSignalStatsResponse(rows=[spb.SignalStatsRow(strategy=s, total=7) for s in request.strategies])


def _generic(short: str, section: str) -> ServiceRegistration:
    """A service added by another issue, with no canned servicer here: every RPC answers NOT_FOUND
    (a 4xx, so the no-5xx fuzz test holds), and the gateway has a healthy upstream to route and check."""
    mod = importlib.import_module(f"aiots.v1.{section}_pb2_grpc")
    base = getattr(mod, f"{short}Servicer")

    message = f"{short}: no canned answer in the gateway test stack"

    async def unary(self: Any, request: Any, context: Any) -> None:
        raise NotFound(message)

    async def stream(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
        raise NotFound(message)
        yield  # an async generator, as grpc.aio wants for a server stream

    desc = importlib.import_module(f"aiots.v1.{section}_pb2").DESCRIPTOR.services_by_name[short]
    methods = {m.name: stream if m.server_streaming else unary for m in desc.methods}
    servicer = type(f"Canned{short}", (base,), methods)()
    return ServiceRegistration(f"aiots.v1.{short}", getattr(mod, f"add_{short}Servicer_to_server"), servicer)


def registrations() -> dict[str, ServiceRegistration]:
    from aiots.gateway.model import SERVICE_SECTIONS

    canned = _canned()
    for short, section in SERVICE_SECTIONS.items():
        if section not in canned and hasattr(Settings(), section):
            canned[section] = _generic(short, section)
    return canned


def _canned() -> dict[str, ServiceRegistration]:
    return {
        "cache": ServiceRegistration("aiots.v1.CacheService", cpb_grpc.add_CacheServiceServicer_to_server, Cache()),
        "ingestion": ServiceRegistration(
            "aiots.v1.IngestionService", ipb_grpc.add_IngestionServiceServicer_to_server, Ingestion()
        ),
        "analytics": ServiceRegistration(
            "aiots.v1.AnalyticsService", apb_grpc.add_AnalyticsServiceServicer_to_server, Analytics()
        ),
        "signals": ServiceRegistration(
            "aiots.v1.SignalService", spb_grpc.add_SignalServiceServicer_to_server, Signals()
        ),
    }


def to_json(msg: Any) -> dict[str, Any]:
    """The proto3 JSON the gateway should print for ``msg`` (independent oracle: protobuf itself)."""
    out: dict[str, Any] = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return out


class Stack:
    """Four upstream servers + the gateway, on a background event loop."""

    def __init__(self, tmp: Path, gateway: dict[str, Any] | None = None, interceptors: Sequence[Any] = ()) -> None:
        self.tmp = tmp
        self.gateway_overrides = gateway or {}
        self.interceptors = list(interceptors)  # extra server interceptors of the upstreams
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: dict[str, GrpcServer] = {}
        self.gateway: Gateway | None = None
        self.settings: Settings | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        ports: dict[str, Any] = {}
        for name, reg in registrations().items():
            gs = await start_server([reg], host="127.0.0.1", port=0, interceptors=self.interceptors)
            self.servers[name] = gs
            ports[name] = {"port": gs.port}
        gw = gateway_settings(
            self.tmp,
            health_check_interval_s=0.3,
            health_check_timeout_s=1.0,
            unhealthy_threshold=1,
            **self.gateway_overrides,
        )
        self.settings = Settings(gateway=gw, **ports)
        self.gateway = Gateway(self.settings, config_dir=self.tmp / "envoy")
        await self.gateway.start()

    def start(self) -> Stack:
        self.thread.start()
        self.run(self._start())
        return self

    async def _stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for gs in self.servers.values():
            await gs.server.stop(0)

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    @property
    def url(self) -> str:
        assert self.settings is not None
        return f"http://127.0.0.1:{self.settings.gateway.port}"

    @property
    def grpc_target(self) -> str:
        assert self.settings is not None
        return f"127.0.0.1:{self.settings.gateway.port}"

    def token(self, role: str, subject: str = "alice", ttl_s: float = 600, **kw: Any) -> str:
        assert self.settings is not None
        return issue_token(self.settings.gateway, role=role, subject=subject, ttl_s=ttl_s, **kw)

    def auth(self, role: str, subject: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}
