"""One pipeline for every source: normalised batch -> bars from trades -> storage, cache, bus.

For each batch (from :mod:`aiots.services.ingestion.normalize`):

1. when the stream has no OHLCV schema, 1s and 1m bars are built from its trades
   (:class:`BarBuilder`); closed bars join the batch (stored in bars_1s/bars_1m);
2. the latest trade/quote per stock updates the cache's PriceBook (optional dependency;
   per symbol and batch: first, low, high and last trade so last/high/low/volume stay exact);
3. events go on the bus (``aiots.v1.events_pb2``) for the topics some service consumes
   (:mod:`aiots.services.common.topics`): ``bars:1m`` (closed bars) keyed by ticker and
   ``options:quotes`` keyed by the UNDERLYING ticker (so a chain stays on one ordered stream).
   Trades, stock quotes and 1s bars are stored, not published (no service reads them as events);
4. the batch goes to the storage writer (bounded queue: this ``await`` is the backpressure).

The bus comes before storage, so a record is published as soon as it is decoded and never waits
for the writer. File sources keep the writer's backpressure on decode (memory stays bounded). A
live source cannot slow the exchange down, so it calls :meth:`Pipeline.detach_writer`: batches go
to the writer through a feeder task, and the writer's backpressure stops at that task (the queue
in front of it is what PostgreSQL owes; the writer spills to disk when PostgreSQL is away).
With a networked bus (Redis) it also publishes from a task (an
:class:`~aiots.services.common.after_burst.AfterBurst`): the first batch goes out at once, and
whatever is decoded while that round trip is in flight goes out in the next command (per topic, in
order), so decoding never waits for a bus round trip and the round trips never bound throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from typing import Any

import numpy as np

from aiots.core import conventions as cv
from aiots.services.common.after_burst import AfterBurst
from aiots.services.common.ports import Event
from aiots.services.common.topics import published
from aiots.services.ingestion import option_quote_wire as oq_wire
from aiots.services.ingestion.bars import BarBuilder
from aiots.services.ingestion.normalize import KIND_OPTION, SYMBOLS, Batch, instrument_info
from aiots.v1 import common_pb2, events_pb2

log = logging.getLogger(__name__)

NS = cv.NS_PER_S
SESSION_OFFSET_S = 5 * 3600
BAR_WIDTHS = {"bars_1s": ("1s", NS), "bars_1m": ("1m", 60 * NS)}


_ts = cv.ns_to_pb


class Pipeline:
    """Stateful per stream (bar builders); share one writer/bus/prices across pipelines."""

    def __init__(
        self,
        *,
        writer: Any = None,
        bus: Any = None,
        prices: Any = None,
        source: int = 0,
        build_bars: bool = True,
        publish: bool = True,
    ) -> None:
        self.writer = writer
        self.bus = bus
        self.prices = prices
        self.source = source
        self.build_bars = build_bars
        self.publish_events = publish and bus is not None
        self.builders = {t: BarBuilder(w, source) for t, (_, w) in BAR_WIDTHS.items()}
        self.published = 0
        self.bus_errors = 0
        self._opt: dict[int, tuple[bool, str]] = {}
        self._route: dict[int, tuple[str, str, str]] = {}
        # Per contract: latest open interest (OPRA statistics) and this session's traded volume,
        # so option quote events carry what contract selection filters on.
        self._oi: dict[str, float] = {}
        self._opt_volume: dict[str, tuple[int, float]] = {}
        #: per option symbol code: (OCC symbol, underlying ticker, the head of its quote events), built once
        self._contract: dict[int, tuple[str, str, bytes]] = {}
        # detach_writer(): batches owed to the writer and the task that hands them over
        self._owed: deque[Batch] = deque()
        self._owed_event: asyncio.Event | None = None
        self._feeder: asyncio.Task[None] | None = None
        # detach_writer() with a networked bus: the events owed to it, (topic, events) per batch,
        # published when the loop next waits
        self._sender: AfterBurst[tuple[str, list[tuple[str, Event]]]] | None = None

    def detach_writer(self) -> None:
        """Hand batches to the writer from a feeder task, so the writer's backpressure never
        delays publishing (live sources). Needs a running event loop; idempotent."""
        if self._feeder is None and self.writer is not None:
            self._owed_event = asyncio.Event()
            self._feeder = asyncio.ensure_future(self._feed_writer())
        if self._sender is None and self.publish_events and getattr(self.bus, "backend", "") != "memory":
            self._sender = AfterBurst(self._send_unsent, None, "ingestion-bus-send")
            self._sender.start()

    @property
    def owed(self) -> int:
        """Batches decoded and published but not yet taken by the writer (detached mode)."""
        return len(self._owed)

    async def _feed_writer(self) -> None:
        assert self._owed_event is not None
        while True:
            await self._owed_event.wait()
            self._owed_event.clear()
            while self._owed:
                await self.writer.put(self._owed[0])  # the writer's backpressure waits here only
                self._owed.popleft()

    async def _send_unsent(self, unsent: list[tuple[str, list[tuple[str, Event]]]]) -> None:
        """Publish what is owed to the bus: everything queued since the last send, one command per
        topic (order kept per topic, and so per stream)."""
        by_topic: dict[str, list[tuple[str, Event]]] = {}
        for topic, items in unsent:
            by_topic.setdefault(topic, []).extend(items)
        for topic, events in by_topic.items():
            try:
                await self.bus.publish_many(topic, events)
                self.published += len(events)
            except Exception:
                self.bus_errors += 1
                log.exception("bus publish failed")

    async def attach_writer(self) -> None:
        """Publish what is owed to the bus and hand every owed batch to the writer, then stop the
        sender and the feeder (back to direct publishing and puts)."""
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.stop(None)  # not cancelled: a Redis command cancelled mid-flight spoils its connection
        feeder, self._feeder = self._feeder, None
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        while self._owed:
            await self.writer.put(self._owed[0])
            self._owed.popleft()

    def _route_of(self, code: int) -> tuple[str, str, str]:
        """(symbol, trade topic, bus key) of a symbol code: options go to options:trades keyed by underlying."""
        sym = SYMBOLS.symbol(code)
        is_opt, und = self._option(code)
        r = (sym, "options:trades", und) if is_opt else (sym, "trades", sym)
        self._route[code] = r
        return r

    def _option(self, code: int) -> tuple[bool, str]:
        r = self._opt.get(code)
        if r is None:
            inf = instrument_info(SYMBOLS.symbol(code))
            r = (inf.kind == KIND_OPTION, inf.underlying)
            self._opt[code] = r
        return r

    async def process(self, batch: Batch) -> None:
        """Bars, store, cache, publish (in that order)."""
        if self.build_bars and "trades" in batch.columns:
            t = batch.columns["trades"]
            stock = np.array([not self._option(int(c))[0] for c in t["sym"].tolist()], dtype=bool)
            if stock.any():
                for table, b in self.builders.items():
                    if table not in batch.columns:
                        batch.add(table, b.on_trades(t["sym"][stock], t["ts_event"][stock], t["price"][stock],
                                                     t["size"][stock]))  # fmt: skip
        await self._emit(batch)

    async def close_bars(self, watermark_ns: int | None = None) -> None:
        """Close bars whose interval ended (watermark) or all of them (None: end of stream)."""
        if not self.build_bars:
            return
        b = Batch()
        for table, builder in self.builders.items():
            b.add(table, builder.close_all() if watermark_ns is None else builder.close_until(watermark_ns))
        if not b.empty():
            await self._emit(b)

    async def _fill_underlying(self, batch: Batch) -> None:
        """Option quotes without an underlying price (e.g. an option-only replay): the cache's latest
        price of the underlying (last trade, else the bid/ask mid) when it has one; else left NaN
        (NULL in storage, 0 on the bus: consumers take the spot from the stock feed)."""
        o = batch.columns.get("option_quotes")
        if o is None:
            return
        up = o["underlying_price"]
        missing = np.isnan(up)
        if not missing.any():
            return
        if not up.flags.writeable:
            up = o["underlying_price"] = up.copy()
        und = o["und"]
        for code in np.unique(und[missing]).tolist():
            try:
                snap = await self.prices.get(SYMBOLS.symbol(code))
            except Exception:  # NotFound (nothing cached yet) or the cache is away
                continue
            px = snap.last or ((snap.bid + snap.ask) / 2 if snap.bid > 0 and snap.ask > 0 else 0.0)
            if px > 0:
                up[missing & (und == code)] = px

    async def _emit(self, batch: Batch) -> None:
        if self.prices is not None:
            await self._fill_underlying(batch)
            try:
                await self._update_prices(batch)
            except Exception:
                log.exception("price book update failed")
        if self.publish_events:
            try:
                await self._publish(batch)
            except Exception:
                self.bus_errors += 1
                log.exception("bus publish failed")
        if self.writer is not None:
            if self._feeder is not None and self._owed_event is not None:
                self._owed.append(batch)
                self._owed_event.set()
            else:
                await self.writer.put(batch)

    async def _update_prices(self, batch: Batch) -> None:
        t = batch.columns.get("trades")
        if t is not None:
            for code, idx in _groups(t["sym"]).items():
                if self._option(code)[0]:
                    continue
                sym = SYMBOLS.symbol(code)
                px, sz, ts = t["price"][idx], t["size"][idx], t["ts_event"][idx]
                ok = ~np.isnan(px)
                if not ok.any():
                    continue
                px, sz, ts = px[ok], sz[ok], ts[ok]
                lo, hi = int(np.argmin(px)), int(np.argmax(px))
                for i in dict.fromkeys((0, lo, hi)):
                    if i != len(px) - 1:
                        await self.prices.on_trade(sym, int(ts[i]), float(px[i]), 0.0)
                await self.prices.on_trade(sym, int(ts[-1]), float(px[-1]), float(sz.sum()))
        q = batch.columns.get("quotes")
        if q is not None:
            for code, idx in _groups(q["sym"]).items():
                i = int(idx[-1])
                bid, ask = float(q["bid"][i]), float(q["ask"][i])
                await self.prices.on_quote(
                    SYMBOLS.symbol(code),
                    int(q["ts_event"][i]),
                    0.0 if np.isnan(bid) else bid,
                    0.0 if np.isnan(ask) else ask,
                    float(q["bid_size"][i]),
                    float(q["ask_size"][i]),
                )

    async def _publish(self, batch: Batch) -> None:
        by_topic: dict[str, list[tuple[str, Event]]] = defaultdict(list)
        src: Any = self.source
        for row in batch.rows.get("option_stats", ()):
            if row[3] is not None:  # (symbol, underlying, as_of, open_interest, close, volume, ts)
                self._oi[row[0]] = float(row[3])
        t = batch.columns.get("trades")
        if t is not None:
            route = self._route
            trade_ev = events_pb2.TradeEvent
            for c, ts, px, sz, side, seq, pub in zip(
                t["sym"].tolist(),
                t["ts_event"].tolist(),
                t["price"].tolist(),
                t["size"].tolist(),
                t["side"].tolist(),
                np.maximum(t["sequence"], 0).tolist(),
                t["publisher_id"].tolist(),
                strict=True,
            ):
                sym, topic, key = route.get(c) or self._route_of(c)
                if published(topic):
                    ev = trade_ev(symbol=sym, ts_event=ts, source=src, price=px, size=sz, side=_CHR[side],
                                  sequence=seq, publisher_id=pub)  # fmt: skip
                    by_topic[topic].append((key, ev))
                if topic == "options:trades":
                    day = session_key(ts)
                    prev_day, vol = self._opt_volume.get(sym, (day, 0.0))
                    self._opt_volume[sym] = (day, (vol if prev_day == day else 0.0) + sz)
        q = batch.columns.get("quotes")
        if q is not None and published("quotes"):
            for c, ts, bid, ask, bs, az in zip(
                q["sym"].tolist(),
                q["ts_event"].tolist(),
                q["bid"].tolist(),
                q["ask"].tolist(),
                q["bid_size"].tolist(),
                q["ask_size"].tolist(),
                strict=True,
            ):
                sym = SYMBOLS.symbol(c)
                by_topic["quotes"].append(
                    (
                        sym,
                        events_pb2.QuoteEvent(
                            symbol=sym, ts_event=ts, source=src, bid=_z(bid), ask=_z(ask), bid_size=bs, ask_size=az
                        ),
                    )
                )
        o = batch.columns.get("option_quotes")
        if o is not None:
            # column-wise wire encoding (option_quote_wire): 0.3-0.65 µs a record at 50-256 a batch
            # against ~2 µs for a message built and serialised per record
            opt_volume, oi, contracts = self._opt_volume, self._oi, self._contract
            ts = o["ts_event"]
            heads: list[bytes] = []
            keys: list[str] = []
            vols: list[float] = []
            ois: list[float] = []
            for c, u, t in zip(o["sym"].tolist(), o["und"].tolist(), ts.tolist(), strict=True):
                sym, und, head = contracts.get(c) or self._contract_of(c, u)
                heads.append(head)
                keys.append(und)
                vday, vol = opt_volume.get(sym, _NO_VOLUME)
                vols.append(vol if vday and vday == session_key(t) else 0.0)  # the day only when a volume is known
                ois.append(oi.get(sym, 0.0))
            payloads = oq_wire.events(
                heads, ts, o["bid"], o["ask"], o["bid_size"], o["ask_size"], vols, ois, o["underlying_price"],
                nan_as_zero=oq_wire.NO_PRICE_AS_ZERO,
            )  # fmt: skip
            by_topic["options:quotes"].extend(zip(keys, payloads, strict=True))
        for table, (interval, _) in BAR_WIDTHS.items():
            bars = batch.columns.get(table)
            if bars is None or not published(f"bars:{interval}"):
                continue
            for i in range(bars["sym"].shape[0]):
                sym = SYMBOLS.symbol(int(bars["sym"][i]))
                if self._option(int(bars["sym"][i]))[0]:
                    continue
                ts = int(bars["ts_event"][i])
                bar = common_pb2.Bar(
                    symbol=sym, interval=interval, ts=_ts(ts), open=float(bars["open"][i]),
                    high=float(bars["high"][i]), low=float(bars["low"][i]), close=float(bars["close"][i]),
                    volume=float(bars["volume"][i]), vwap=float(bars["vwap"][i]),
                    trade_count=int(bars["trade_count"][i]),
                )  # fmt: skip
                by_topic[f"bars:{interval}"].append(
                    (sym, events_pb2.BarEvent(source=src, bar=bar, ts_event=ts, closed=True))
                )
        if self._sender is not None:
            await self._sender.put(list(by_topic.items()))
            return
        for topic, items in by_topic.items():
            await self.bus.publish_many(topic, items)
            self.published += len(items)

    def _contract_of(self, code: int, und_code: int) -> tuple[str, str, bytes]:
        """(OCC symbol, underlying ticker, the head of its quote events) of an option symbol code
        (cached; :func:`option_quote_wire.head`)."""
        sym = SYMBOLS.symbol(code)
        inf = instrument_info(sym)
        contract = common_pb2.OptionContract(
            occ_symbol=sym, underlying=inf.underlying, strike=inf.strike or 0.0,
            expiry=inf.expiry.isoformat() if inf.expiry else "",
            right=common_pb2.OPTION_RIGHT_CALL if inf.right == "C" else common_pb2.OPTION_RIGHT_PUT,
            multiplier=inf.multiplier, style=common_pb2.EXERCISE_STYLE_AMERICAN,
        )  # fmt: skip
        r = self._contract[code] = (sym, SYMBOLS.symbol(und_code), oq_wire.head(sym, self.source, contract))
        return r


_NO_VOLUME = (0, 0.0)


def session_key(ts_ns: int) -> int:
    """Trading-session day number of a ns timestamp (UTC-5h: one key per US session, DST-safe for RTH)."""
    return (ts_ns // NS - SESSION_OFFSET_S) // 86_400


_CHR = [chr(i) for i in range(256)]


def _z(x: float) -> float:
    return 0.0 if x != x else x


def _groups(codes: np.ndarray[Any, Any]) -> dict[int, np.ndarray[Any, Any]]:
    """code -> indices (in order) of that code."""
    order = np.argsort(codes, kind="stable")
    c = codes[order]
    brk = np.flatnonzero(c[1:] != c[:-1]) + 1
    return {int(codes[g[0]]): g for g in np.split(order, brk)} if c.shape[0] else {}
