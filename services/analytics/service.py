"""AnalyticsService servicer: validate, fetch, hand the maths to a thread, convert. No maths here.

CPU-heavy core calls run in a worker thread (they release the GIL). Batch RPCs run in chunks of
``settings.analytics.chunk_rows`` rows, so a cancelled or timed-out RPC stops after the chunk in
flight. Computed answers go through a cache-aside keyed by (request, data version).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

import grpc
import numpy as np
from google.protobuf.message import Message

from aiots.core import conventions as cv
from aiots.services.analytics import conversions as conv
from aiots.services.analytics import indicators as ind
from aiots.services.analytics import options_analytics as oa
from aiots.services.analytics import patterns as pat
from aiots.services.analytics import pricing, store, surface
from aiots.services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import pre_encoded
from aiots.services.common.validation import require_budget, require_enum, require_ticker, require_time_range
from aiots.services.storage import queries
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import analytics_pb2_grpc as pb_grpc
from aiots.v1 import common_pb2

T = TypeVar("T")
DEFAULT_MONEYNESS = np.round(np.arange(-0.3, 0.3 + 1e-9, 0.05), 10)
MIN_STEPS, MAX_STEPS = 3, 20_000
RIGHTS = (common_pb2.OPTION_RIGHT_CALL, common_pb2.OPTION_RIGHT_PUT)
COLLECT_HINT = "collect it with `aiots collect start --symbols {sym}` (IngestionService.StartCollection) or Backfill"


def _symbol(raw: str, field: str = "symbol") -> str:
    return require_ticker(field, raw)


def _require_rights(field: str, rows: Any, batch: pricing.ContractBatch) -> None:
    """Every row names its right (CALL or PUT); the first that does not is INVALID_ARGUMENT."""
    bad = np.flatnonzero(~batch.right_ok)
    if bad.size:
        i = int(bad[0])
        require_enum(f"{field}[{i}].right", int(rows[i].right), RIGHTS, common_pb2.OptionRight)


def _iso(ns: int | None) -> str:
    return "-" if ns is None else cv.rfc3339(ns, cv.UTC)


class AnalyticsServicer(pb_grpc.AnalyticsServiceServicer):
    """Thin servicer over the analytics domain modules."""

    def __init__(self, rt: Runtime, live: Any = None) -> None:
        self.rt = rt
        self.cfg = rt.settings.analytics
        self.market = rt.settings.market  # rate and dividend yields: one home for every pricing path
        self.cache = store.ResultCache(rt.cache, self.cfg.result_ttl_s)
        self.live = live
        # per data version: the bars a query reads, and chain snapshots with their solved IVs/Greeks
        self.bars = store.VersionedCache(self.cfg.bars_cache_entries)
        self.chains = store.VersionedCache(self.cfg.chain_cache_entries)
        self.surfaces = store.VersionedCache(self.cfg.chain_cache_entries)
        #: encoded live GetIndicators answers by request bytes, at the live state's ``changes``
        self.live_answers = store.VersionedCache(self.cfg.live_answer_entries)

    # -- helpers -----------------------------------------------------------------------------------------

    @property
    def db(self) -> Any:
        if self.rt.db is None:
            raise Unavailable("analytics has no database connection (DATABASE_URL unset and no embedded PG)")
        return self.rt.db

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _acfg(self, sym: str, unusual: float = 0.0) -> oa.AnalyticsConfig:
        return oa.AnalyticsConfig(
            rate=self.market.risk_free_rate,
            unusual_threshold=unusual if unusual > 0 else self.cfg.unusual_volume_oi,
            american_method=pricing.as_method(self.cfg.american_method),
            max_unusual=self.cfg.max_unusual,
            dividend_yield=self.market.dividend_yield(sym),
            max_last_age_ns=int(self.cfg.max_last_age_s * cv.NS_PER_S),
            spot_sync_tolerance_ns=int(self.cfg.spot_sync_tolerance_s * cv.NS_PER_S),
        )

    async def _require_chain(self, sym: str) -> Any:
        chain = await queries.latest_option_chain(self.db, sym)
        if len(chain) == 0:
            if not await store.symbol_known(self.db, sym) and not await store.underlying_has_options(self.db, sym):
                raise NotFound(f"unknown symbol {sym!r}: no stock or option data is stored for it")
            raise FailedPrecondition(
                f"no unexpired option chain stored for {sym}; " + COLLECT_HINT.format(sym=sym),
                reason="NO_DATA",
            )
        return chain

    async def _enriched(self, sym: str, version: int | None = None) -> oa.EnrichedChain:
        """The chain with IVs/Greeks solved once per data version (the American IVs are the costly part)."""
        if version is None:
            version = await store.chain_version(self.db, sym)

        async def make() -> oa.EnrichedChain:
            chain = await self._require_chain(sym)
            ts = np.asarray(chain.ts, dtype=np.int64)
            since = queries.session_start_ns(int(ts.max())) if ts.size and ts.max() > 0 else 0
            last = await store.last_trade_ts(self.db, list(chain.occ), since)
            times = oa.ChainTimes(
                spot_ts_ns=await store.spot_ts(self.db, sym),
                last_ts=np.array([last.get(o, 0) for o in chain.occ], dtype=np.int64),
            )
            return await self._thread(oa.enrich, chain, self._acfg(sym), None, times)

        return await self.chains.get(sym, version, make)

    async def _convert(self, n: int, fn: Callable[..., T], *args: Any) -> T:
        """Proto conversion of ``n`` rows: in a worker thread when large, so the loop stays free."""
        if n >= self.cfg.thread_rows:
            return await self._thread(fn, *args)
        return fn(*args)

    # -- batch pricing -----------------------------------------------------------------------------------

    def _check_batch(self, n: int, field: str) -> None:
        if not 1 <= n <= self.cfg.max_batch:
            raise InvalidArgument(field, f"send 1..{self.cfg.max_batch} rows, got {n}")

    def _method(self, method: str, steps: int) -> tuple[pricing.AmericanMethod, int]:
        try:
            m = pricing.as_method(method.strip().lower() or pricing.DEFAULT_METHOD)
        except ValueError:
            raise InvalidArgument(
                "american_method", f"{method!r} unknown; use one of {list(pricing.AMERICAN_METHODS)}"
            ) from None
        if steps and not MIN_STEPS <= steps <= MAX_STEPS:
            raise InvalidArgument("steps", f"steps must be in {MIN_STEPS}..{MAX_STEPS} (0 for default), got {steps}")
        return m, steps or self.cfg.binomial_steps

    def _budget(
        self, b: pricing.ContractBatch, method: pricing.AmericanMethod, steps: int, field: str, solves: int = 1
    ) -> int:
        """Refuse a batch whose tree work (binomial rows x steps^2 x ``solves``) is over
        ``max_tree_nodes``, before any work; returns the rows per chunk (``chunk_tree_nodes`` each)."""
        tree = b.american & (np.fromiter((bool(d) for d in b.dividends), np.bool_, len(b)) | (method == "binomial"))
        rows = int(tree.sum())
        per_row = steps * steps * solves
        require_budget(
            field,
            rows * per_row,
            self.cfg.max_tree_nodes,
            f"binomial tree nodes ({rows} tree contracts x {steps}^2 steps"
            + (f" x {solves} solver evaluations)" if solves > 1 else ")"),
        )
        return max(1, min(self.cfg.chunk_rows, self.cfg.chunk_tree_nodes // per_row)) if rows else self.cfg.chunk_rows

    async def _run_chunks(
        self, context: grpc.aio.ServicerContext, fn: Callable[..., T], chunks: list[pricing.ContractBatch], *args: Any
    ) -> list[T]:
        """``fn(chunk, *args)`` per chunk in a worker thread; stops between chunks when the client
        has gone (cancelled) or the deadline has passed, so no work outlives its request."""
        out = []
        for i, c in enumerate(chunks):
            if context.cancelled() or context.done():
                raise asyncio.CancelledError
            left = context.time_remaining()
            if left is not None and left <= 0:
                raise DeadlineExceeded(f"deadline passed after {i} of {len(chunks)} chunks; send fewer contracts")
            out.append(await self._thread(fn, c, *args))
        return out

    def _chunks(self, b: pricing.ContractBatch, size: int | None = None) -> list[pricing.ContractBatch]:
        size = size or self.cfg.chunk_rows
        out = []
        for lo in range(0, len(b), size):
            hi = min(lo + size, len(b))
            sl = slice(lo, hi)
            out.append(
                replace(
                    b,
                    spot=b.spot[sl],
                    strike=b.strike[sl],
                    t=b.t[sl],
                    rate=b.rate[sl],
                    q=b.q[sl],
                    vol=b.vol[sl],
                    price=b.price[sl],
                    is_call=b.is_call[sl],
                    right_ok=b.right_ok[sl],
                    american=b.american[sl],
                    dividends=b.dividends[sl],
                )
            )
        return out

    @pre_encoded(pb.PriceOptionsResponse)
    async def PriceOptions(self, request: pb.PriceOptionsRequest, context: grpc.aio.ServicerContext) -> bytes:
        self._check_batch(len(request.contracts), "contracts")
        method, steps = self._method(request.american_method, request.steps)
        n = len(request.contracts)
        batch = await self._convert(n, conv.contracts_from_proto, request.contracts)
        _require_rights("contracts", request.contracts, batch)
        rows = self._budget(batch, method, steps, "contracts")
        parts = await self._run_chunks(context, pricing.price_batch, self._chunks(batch, rows), method, steps)
        merged = pricing.PricedBatch(
            price=np.concatenate([p.price for p in parts]),
            greeks={g: np.concatenate([p.greeks[g] for p in parts]) for g in pricing.GREEK_NAMES},
            reasons=[r for p in parts for r in p.reasons],
        )
        return await self._convert(n, conv.priced_wire, merged)

    @pre_encoded(pb.ImpliedVolatilityResponse)
    async def ImpliedVolatility(self, request: pb.ImpliedVolatilityRequest, context: grpc.aio.ServicerContext) -> bytes:
        self._check_batch(len(request.quotes), "quotes")
        n = len(request.quotes)
        batch = await self._convert(n, conv.contracts_from_proto, request.quotes)
        _require_rights("quotes", request.quotes, batch)
        method, steps = self._method("", 0)
        rows = self._budget(batch, method, steps, "quotes", self.cfg.iv_tree_evaluations)
        parts = await self._run_chunks(context, pricing.iv_batch, self._chunks(batch, rows), method, steps)
        merged = pricing.IvBatch(
            iv=np.concatenate([p.iv for p in parts]), reasons=[r for p in parts for r in p.reasons]
        )
        return await self._convert(n, conv.iv_wire, merged)

    # -- chain ---------------------------------------------------------------------------------------------

    async def _cached(self, kind: str, text: str, version: int, make: Callable[[], Awaitable[Message]]) -> bytes:
        """The serialised response from the result cache, computed by ``make`` on a miss (sent as is)."""

        async def compute() -> bytes:
            msg = await make()
            return bytes(msg.SerializeToString())

        raw, _ = await self.cache.get_or_compute(self.cache.key(kind, text, version), compute)
        return raw

    @pre_encoded(pb.GetOptionChainResponse)
    async def GetOptionChain(self, request: pb.GetOptionChainRequest, context: grpc.aio.ServicerContext) -> bytes:
        sym = _symbol(request.symbol)
        expiry = request.expiry.strip()
        if expiry:
            try:
                dt.date.fromisoformat(expiry)
            except ValueError:
                raise InvalidArgument("expiry", f"{expiry!r} is not a date YYYY-MM-DD") from None
        version = await store.chain_version(self.db, sym)

        async def make() -> pb.GetOptionChainResponse:
            ch = await self._enriched(sym, version)
            if expiry and expiry not in ch.expiry:
                raise FailedPrecondition(
                    f"no contracts of {sym} expiring {expiry} are stored; expiries: {sorted(set(ch.expiry))}",
                    reason="NO_DATA",
                )
            return await self._convert(len(ch.occ), conv.chain_to_proto, ch, expiry)

        return await self._cached("chain", f"{sym}|{expiry}", version, make)

    @pre_encoded(pb.GetOptionsAnalyticsResponse)
    async def GetOptionsAnalytics(
        self, request: pb.GetOptionsAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        sym = _symbol(request.symbol)
        thr = request.unusual_threshold
        if not (math.isfinite(thr) and thr >= 0):
            raise InvalidArgument("unusual_threshold", f"must be a finite number >= 0 (0: default), got {thr}")
        version = await store.chain_version(self.db, sym)
        acfg = self._acfg(sym, thr)

        async def make() -> pb.GetOptionsAnalyticsResponse:
            ch = await self._enriched(sym, version)
            hist = await queries.atm_iv_history(self.db, sym, self.cfg.iv_history_days)
            res = await self._thread(oa.analyze, ch, acfg, hist.iv)
            return conv.analytics_to_proto(res, ch)

        text = f"{sym}|{acfg.unusual_threshold}"
        return await self._cached("options", text, version, make)

    async def GetVolSurface(
        self, request: pb.GetVolSurfaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVolSurfaceResponse:
        sym = _symbol(request.symbol)
        k = np.array(request.moneyness, dtype=np.float64) if request.moneyness else DEFAULT_MONEYNESS
        if not np.isfinite(k).all() or (np.abs(k) > 5).any():
            raise InvalidArgument("moneyness", "values must be finite log-moneyness within [-5, 5]")
        tq = np.array(request.maturities, dtype=np.float64)
        if tq.size and (~np.isfinite(tq) | (tq <= 0) | (tq > 30)).any():
            raise InvalidArgument("maturities", "values must be years in (0, 30]")
        points = k.size * max(tq.size, 1)
        what = f"surface points ({k.size} moneyness x {max(tq.size, 1)} maturities)"
        require_budget("moneyness", points, self.cfg.max_surface_points, what)
        version = await store.chain_version(self.db, sym)
        ch = await self._enriched(sym, version)
        quotes = oa.surface_quotes(ch, self.market.risk_free_rate)

        async def make() -> surface.SurfaceFit:
            return await self._thread(surface.fit_surface, quotes)

        fitted = await self.surfaces.get(sym, version, make)  # the fit is per data version, not per grid
        fit = replace(
            fitted, calendar_arbitrage_free=fitted.calendar_arbitrage_free and surface.calendar_free(fitted.ok, k)
        )
        if not fit.slices:
            raise FailedPrecondition(f"{sym}: the stored chain has no unexpired expiry to fit", reason="NO_DATA")
        t = tq if tq.size else np.array([s.t for s in fit.ok])
        grid = surface.surface_grid(fit.slices, k, t)
        return conv.surface_to_proto(sym, ch.as_of_ns, fit, k, t, grid, ch, quotes)

    # -- indicators ------------------------------------------------------------------------------------------

    def _indicator_query(self, request: pb.GetIndicatorsRequest) -> ind.IndicatorQuery:
        sym = _symbol(request.symbol)
        interval = request.interval.strip() or "1d"
        if interval not in ind.INTERVALS:
            raise InvalidArgument("interval", f"{interval!r} unknown; use one of {list(ind.INTERVALS)}")
        names = ind.parse_names(list(request.indicators))
        calls = ind.build_calls(names, request.period, list(request.params), self.cfg.max_period)
        lookback = request.lookback or self.cfg.default_lookback
        if not 1 <= lookback <= self.cfg.max_lookback:
            raise InvalidArgument("lookback", f"lookback must be in 1..{self.cfg.max_lookback}, got {lookback}")
        start, end = require_time_range(request, ordered=False)
        if start is not None and end is not None and start >= end:
            raise InvalidArgument("start", f"start {_iso(start)} must be before end {_iso(end)}")
        return ind.IndicatorQuery(sym, interval, calls, lookback, start, end, request.include_series, request.period)

    @pre_encoded(pb.GetIndicatorsResponse)
    async def GetIndicators(self, request: pb.GetIndicatorsRequest, context: grpc.aio.ServicerContext) -> bytes:
        key = b""
        if self.live is not None:
            # the same request between two bars gets the same bytes: answered without validating,
            # reading the state or encoding again (a request once valid stays valid)
            key = request.SerializeToString()
            known = self.live_answers.peek(key, self.live.changes)
            if known is not None:
                return cast(bytes, known)
        q = self._indicator_query(request)
        if self.live is not None and not q.include_series and q.start_ns is None and q.end_ns is None:
            changes = self.live.changes
            live = self.live.latest(q.symbol, q.interval, q.calls)
            if live is not None:
                ts, values = live
                raw = conv.indicators_wire(q.symbol, q.interval, ts, values, False, "live")
                self.live_answers.put(key, changes, raw)
                return raw
        version = await store.bars_version(self.db, q.symbol, q.interval)

        async def fetch() -> Any:
            return await queries.get_bars(self.db, q.symbol, q.interval, q.start_ns, q.end_ns, q.lookback)

        async def compute() -> bytes:
            window = (q.symbol, q.interval, q.start_ns, q.end_ns, q.lookback)
            bars = await self.bars.get(window, version, fetch)
            if len(bars) == 0:
                if not await store.symbol_known(self.db, q.symbol):
                    raise NotFound(f"unknown symbol {q.symbol!r}: no instrument or bars are stored for it")
                raise FailedPrecondition(
                    f"no {q.interval} bars stored for {q.symbol} in [{_iso(q.start_ns)}, {_iso(q.end_ns)}); "
                    + COLLECT_HINT.format(sym=q.symbol),
                    reason="NO_DATA",
                )
            values = await self._thread(ind.compute, q.calls, bars)
            n = len(bars) if q.include_series else 1
            # cached without its source (the empty field encodes to nothing); the source is appended below
            return await self._convert(
                n, conv.indicators_wire, q.symbol, q.interval, bars.ts, values, q.include_series, ""
            )

        raw, hit = await self.cache.get_or_compute(self.cache.key("ind", q.cache_key(), version), compute)
        return raw + conv.source_wire("cache" if hit else "computed")

    # -- patterns ------------------------------------------------------------------------------------------

    @pre_encoded(pb.GetPatternsResponse)
    async def GetPatterns(self, request: pb.GetPatternsRequest, context: grpc.aio.ServicerContext) -> bytes:
        sym = _symbol(request.symbol)
        days = request.days or self.cfg.default_pattern_days
        if not self.cfg.min_pattern_days <= days <= self.cfg.max_pattern_days:
            raise InvalidArgument(
                "days", f"days must be in {self.cfg.min_pattern_days}..{self.cfg.max_pattern_days}, got {days}"
            )
        interval = request.interval.strip() or "1d"
        if interval not in ind.INTERVALS:
            raise InvalidArgument("interval", f"{interval!r} unknown; use one of {list(ind.INTERVALS)}")
        version = await store.bars_version(self.db, sym, interval)

        async def make() -> pb.GetPatternsResponse:
            end = version + 1
            start = end - days * 86_400 * conv.NS
            bars = await queries.get_bars(self.db, sym, interval, start, end, self.cfg.max_lookback)
            if len(bars) == 0:
                if not await store.symbol_known(self.db, sym):
                    raise NotFound(f"unknown symbol {sym!r}: no instrument or bars are stored for it")
                raise FailedPrecondition(
                    f"no {interval} bars stored for {sym} in the last {days} days; " + COLLECT_HINT.format(sym=sym),
                    reason="NO_DATA",
                )
            res = await self._thread(pat.scan, bars)
            return conv.patterns_to_proto(sym, bars.ts, res)

        return await self._cached("pat", f"{sym}|{days}|{interval}", version, make)
