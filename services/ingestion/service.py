"""IngestionService servicer (gRPC, port 8002): validate, convert proto <-> domain, delegate.

Domain: :class:`~aiots.services.ingestion.manager.IngestionManager` (jobs, backfill, status) and
:mod:`aiots.services.storage.queries` (stored data). Bad input raises ``InvalidArgument`` with
what is supported; the error interceptor maps it to INVALID_ARGUMENT with google.rpc details.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from aiots.core import conventions as cv
from aiots.services.common.errors import InvalidArgument
from aiots.services.common.streams import resume_from
from aiots.services.common.validation import require_ticker, require_tickers, require_time_range
from aiots.services.ingestion import store
from aiots.services.ingestion.manager import IngestionManager, Status, validate_symbols
from aiots.services.ingestion.normalize import KIND_OPTION, SOURCE_SIMULATOR, parse_occ
from aiots.services.ingestion.sources.simulator import ClockStatus
from aiots.services.storage import queries
from aiots.v1 import common_pb2, ingestion_pb2, ingestion_pb2_grpc

SERVICE_NAME = "aiots.v1.IngestionService"
NS = cv.NS_PER_S
BAR_INTERVALS = ("1s", "1m", "5m", "15m", "1h", "1d")
MAX_BARS = 100_000
DEFAULT_BARS = 10_000
MAX_TRADES = 100_000
DEFAULT_TRADES = 1000
DEFAULT_PAGE = 100
MAX_PAGE = 1000


_ts = cv.ns_to_pb
_ns = cv.pb_to_ns


def _lag_ref(st: Status, source: int, now_ns: int) -> int:
    """The instant a stream's lag is measured from: the simulated market time for the simulator
    (it may replay the last session while the market is closed), else the wall clock."""
    if source == SOURCE_SIMULATOR and st.market_clock is not None:
        return st.market_clock.market_ns
    return now_ns


def _clock(c: ClockStatus | None) -> ingestion_pb2.MarketClock | None:
    if c is None:
        return None
    return ingestion_pb2.MarketClock(
        mode=c.mode, phase=c.phase, market_time=_ts(c.market_ns), session_date=c.session.isoformat(), note=c.note
    )


def _limit(v: int, default: int, maximum: int, field: str) -> int:
    if v < 0 or v > maximum:
        raise InvalidArgument(field, f"{v} is out of range; allowed 1..{maximum} (0 means {default})")
    return v or default


def _contract(r: queries.InstrumentRow) -> common_pb2.OptionContract:
    return common_pb2.OptionContract(
        occ_symbol=r.symbol,
        underlying=r.underlying,
        strike=r.strike or 0.0,
        expiry=r.expiry.isoformat() if r.expiry else "",
        right=common_pb2.OPTION_RIGHT_CALL if r.right == "C" else common_pb2.OPTION_RIGHT_PUT,
        multiplier=r.multiplier,
        style=common_pb2.EXERCISE_STYLE_EUROPEAN
        if cv.exercise_style(r.symbol) == "european"
        else common_pb2.EXERCISE_STYLE_AMERICAN,
    )


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    """Thin servicer."""

    def __init__(self, manager: IngestionManager, pool: Any) -> None:
        self.m = manager
        self.pool = pool

    async def _symbol(self, raw: str) -> str:
        """A configured ticker or one with stored data; InvalidArgument listing the supported ones otherwise."""
        sym = require_ticker("symbol", raw)
        if await store.symbol_known(self.pool, sym):
            return sym
        (sym,) = validate_symbols(self.m.settings, [sym], "symbol")
        return str(sym)

    async def StartCollection(
        self, request: ingestion_pb2.StartCollectionRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.StartCollectionResponse:
        require_tickers("symbols", request.symbols)  # blank entries are errors, not "all"
        job_id, started, source, msg = await self.m.start_collection(
            list(request.symbols), list(request.schemas), int(request.source), request.include_options
        )
        return ingestion_pb2.StartCollectionResponse(job_id=job_id, started=started, source=source, message=msg)  # type: ignore[arg-type]

    async def StopCollection(
        self, request: ingestion_pb2.StopCollectionRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.StopCollectionResponse:
        if request.all and request.symbols:
            raise InvalidArgument("all", "give either symbols or all=true, not both")
        if not request.all and not request.symbols:
            raise InvalidArgument("symbols", 'list the tickers to stop, or send {"all": true} to stop every job')
        symbols = require_tickers("symbols", request.symbols)
        ids, flushed = await self.m.stop_collection(symbols)
        return ingestion_pb2.StopCollectionResponse(job_ids=ids, records_flushed=flushed)

    async def GetCollectionStatus(
        self, request: ingestion_pb2.GetCollectionStatusRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetCollectionStatusResponse:
        st = await self.m.cluster_status()
        now = time.time_ns()
        return ingestion_pb2.GetCollectionStatusResponse(
            running=st.running,
            streams=[
                ingestion_pb2.StreamStatus(
                    symbol=s.symbol,
                    schema=s.schema,
                    records=s.records,
                    last_event=_ts(s.last_event_ns),
                    lag_seconds=max(0.0, (_lag_ref(st, s.source, now) - s.last_event_ns) / NS)
                    if s.last_event_ns
                    else 0.0,
                    errors=s.errors,
                    source=s.source,  # type: ignore[arg-type]
                )
                for s in st.streams
            ],
            pending_records=st.pending_records,
            spilled_records=st.spilled_records,
            data_quality_events=st.data_quality_events,
            market_clock=_clock(st.market_clock),
        )

    async def Backfill(
        self, request: ingestion_pb2.BackfillRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingestion_pb2.BackfillResponse]:
        if not request.HasField("start") or not request.HasField("end"):
            raise InvalidArgument("start", "start and end are required (UTC timestamps, end exclusive)")
        require_time_range(request)
        require_tickers("symbols", request.symbols)
        if request.max_cost_usd < 0:
            raise InvalidArgument("max_cost_usd", f"{request.max_cost_usd} must be >= 0")
        start = dt.datetime.fromtimestamp(_ns(request.start) / NS, dt.UTC)
        end = dt.datetime.fromtimestamp(_ns(request.end) / NS, dt.UTC)
        async for p in self.m.backfill(
            list(request.symbols), list(request.schemas), start, end, request.dataset, request.max_cost_usd,
            request.resume_job_id,
        ):  # fmt: skip
            resume_from("resume_job_id", p.job_id)
            yield ingestion_pb2.BackfillResponse(
                job_id=p.job_id,
                chunks_done=p.chunks_done,
                chunks_total=p.chunks_total,
                records=p.records,
                cost_usd=p.cost_usd,
                eta_seconds=p.eta_seconds,
                current=p.current,
                done=p.done,
            )

    async def GetBars(
        self, request: ingestion_pb2.GetBarsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetBarsResponse:
        sym = await self._symbol(request.symbol)
        interval = request.interval or "1m"
        if interval not in BAR_INTERVALS:
            raise InvalidArgument("interval", f"{interval!r} not supported; use one of {', '.join(BAR_INTERVALS)}")
        limit = _limit(request.limit, DEFAULT_BARS, MAX_BARS, "limit")
        start, end = require_time_range(request)
        bars = await queries.get_bars(self.pool, sym, interval, start, end, limit)
        out = [
            common_pb2.Bar(
                symbol=sym,
                interval=interval,
                ts=_ts(int(t)),
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                vwap=w,
                trade_count=int(n),
            )
            for t, o, h, lo, c, v, w, n in zip(
                bars.ts.tolist(),
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                bars.vwap.tolist(),
                bars.trade_count.tolist(),
                strict=True,
            )
        ]
        return ingestion_pb2.GetBarsResponse(bars=out)

    async def GetTrades(
        self, request: ingestion_pb2.GetTradesRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetTradesResponse:
        raw = request.symbol if parse_occ(request.symbol) else await self._symbol(request.symbol)
        limit = _limit(request.limit, DEFAULT_TRADES, MAX_TRADES, "limit")
        start, end = require_time_range(request)
        t = await queries.get_trades(self.pool, raw, start, end, limit)
        return ingestion_pb2.GetTradesResponse(
            trades=[
                common_pb2.Trade(
                    symbol=raw,
                    ts=_ts(int(ts)),
                    price=p,
                    size=s,
                    side=sd,
                    publisher_id=int(pub),
                    sequence=max(int(seq), 0),
                )
                for ts, p, s, sd, pub, seq in zip(
                    t.ts.tolist(),
                    t.price.tolist(),
                    t.size.tolist(),
                    t.side,
                    t.publisher_id.tolist(),
                    t.sequence.tolist(),
                    strict=True,
                )
            ]
        )

    async def ListInstruments(
        self, request: ingestion_pb2.ListInstrumentsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.ListInstrumentsResponse:
        und = (
            validate_symbols(self.m.settings, [require_ticker("underlying", request.underlying)], "underlying")[0]
            if request.underlying
            else None
        )
        kind = int(request.kind) or None
        if kind not in (None, 1, 2):
            raise InvalidArgument("kind", f"{request.kind} unknown; use INSTRUMENT_KIND_STOCK or _OPTION")
        size = _limit(request.page.page_size, DEFAULT_PAGE, MAX_PAGE, "page.page_size")
        rows = await queries.list_instruments(self.pool, und, kind, request.page.page_token, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        out = []
        for r in rows:
            ins = common_pb2.Instrument(symbol=r.symbol, kind=r.kind, dataset=r.dataset,  # type: ignore[arg-type]
                                        instrument_id=r.instrument_id)  # fmt: skip
            if r.kind == KIND_OPTION:
                ins.option.CopyFrom(_contract(r))
            if r.valid_from is not None:
                ins.valid_from.FromDatetime(r.valid_from)
            if r.valid_to is not None:
                ins.valid_to.FromDatetime(r.valid_to)
            out.append(ins)
        return ingestion_pb2.ListInstrumentsResponse(
            instruments=out, page=common_pb2.PageResponse(next_page_token=rows[-1].symbol if more else "")
        )

    async def GetOptionChainDefinitions(
        self, request: ingestion_pb2.GetOptionChainDefinitionsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.GetOptionChainDefinitionsResponse:
        (und,) = validate_symbols(self.m.settings, [require_ticker("symbol", request.symbol)], "symbol")
        expiry = None
        if request.expiry:
            try:
                expiry = dt.date.fromisoformat(request.expiry)
            except ValueError:
                raise InvalidArgument("expiry", f"{request.expiry!r} is not a date; use YYYY-MM-DD") from None
        rows = await queries.option_definitions(self.pool, und, expiry)
        return ingestion_pb2.GetOptionChainDefinitionsResponse(contracts=[_contract(r) for r in rows])


def add_to_server(servicer: IngestionServicer, server: grpc.aio.Server) -> None:
    ingestion_pb2_grpc.add_IngestionServiceServicer_to_server(servicer, server)
