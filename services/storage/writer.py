"""Idempotent batched writer: binary COPY into staging, then INSERT ... ON CONFLICT DO NOTHING.

Flow: producers ``await writer.put(batch)`` into a queue bounded in *records*
(``ingestion.queue_size``: producers wait when it is full, which is the backpressure on decode).
One writer task coalesces batches up to ``ingestion.batch_size`` records or
``ingestion.flush_interval_s``, and per table:

1. builds the PostgreSQL binary COPY stream straight from the NumPy columns (no Python tuples);
2. ``COPY`` into a temporary staging table (``ON COMMIT DELETE ROWS``, unlogged by nature);
3. ``INSERT INTO <table> SELECT ... FROM staging JOIN stg_sym ... ON CONFLICT DO NOTHING`` on the
   natural key (symbol, ts_event, publisher_id, sequence) or (symbol, ts_event) for bars,

all in one transaction, so a replay, a gap backfill or a retried batch never stores a row twice.
Fast path (``optimistic``, default): a table's rows are first COPYed straight into the table
(binary payload with symbol text and timestamptz built in NumPy) inside a savepoint; fresh data
(the common case) costs one COPY. A duplicate key rolls the savepoint back and that table's rows
take the staging + ON CONFLICT path above, so the result is the same either way.

When PostgreSQL is down or slow (connection lost, refused, terminated mid-COPY), the batch is
appended to a zstd segment file in ``ingestion.spill_dir``; while any segment exists, new batches
are appended too (order kept), and the oldest segments are written back, in order, as soon as a
connection succeeds (exponential backoff). A batch is *acknowledged* once it is committed or its
segment is fsynced: :meth:`flush` returns when everything put so far is acknowledged. Segments
left behind by a previous process are written back at start. A segment that fails with a data
error ``max_attempts`` times is moved to ``spill_dir/dead`` and counted, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import pickle
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import zstandard

from aiots.core.conventions import NS_PER_DAY
from aiots.services.storage.migrate import PARTITIONED_TABLES, ensure_partitions
from aiots.services.storage.records import (
    KIND_STOCK,
    SYMBOLS,
    TABLES,
    Batch,
    SymbolTable,
    instrument_info,
    merge,
)

log = logging.getLogger(__name__)

_PG_TYPES = {"i2": "int2", "i4": "int4", "i8": "int8", "f8": "float8"}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

# table -> (target columns, select expressions over staging s / symbol map m / underlying map u)
_TS = "to_timestamp(s.ts_event::float8 / 1e9)"
_NUL = "NULLIF(s.{0}, 'NaN')"
_INSERTS: dict[str, tuple[str, str]] = {
    "trades": (
        "symbol, ts_event, ts, price, size, side, publisher_id, sequence, ts_recv, source",
        f"m.symbol, s.ts_event, {_TS}, s.price, s.size, chr(s.side), s.publisher_id, s.sequence, s.ts_recv, s.source",
    ),
    "quotes": (
        "symbol, ts_event, ts, bid, ask, bid_size, ask_size, publisher_id, sequence, source",
        f"m.symbol, s.ts_event, {_TS}, {_NUL.format('bid')}, {_NUL.format('ask')}, s.bid_size, s.ask_size, "
        "s.publisher_id, s.sequence, s.source",
    ),
    "option_quotes": (
        "symbol, underlying, ts_event, ts, bid, ask, bid_size, ask_size, underlying_price, publisher_id, "
        "sequence, source",
        f"m.symbol, u.symbol, s.ts_event, {_TS}, {_NUL.format('bid')}, {_NUL.format('ask')}, "
        "s.bid_size, s.ask_size, "
        f"{_NUL.format('underlying_price')}, s.publisher_id, s.sequence, s.source",
    ),
}
for _t in ("bars_1s", "bars_1m", "bars_1d"):
    _INSERTS[_t] = (
        "symbol, ts_event, ts, open, high, low, close, volume, vwap, trade_count, source",
        f"m.symbol, s.ts_event, {_TS}, s.open, s.high, s.low, s.close, s.volume, s.vwap, s.trade_count, s.source",
    )

_ROW_SQL: dict[str, str] = {
    "instruments": """INSERT INTO instruments
            (symbol, kind, underlying, strike, expiry, option_right, multiplier, dataset)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (symbol) DO UPDATE SET kind = EXCLUDED.kind, underlying = EXCLUDED.underlying,
            strike = COALESCE(EXCLUDED.strike, instruments.strike),
            expiry = COALESCE(EXCLUDED.expiry, instruments.expiry),
            option_right = COALESCE(EXCLUDED.option_right, instruments.option_right),
            multiplier = EXCLUDED.multiplier,
            dataset = CASE WHEN EXCLUDED.dataset = '' THEN instruments.dataset ELSE EXCLUDED.dataset END,
            updated_at = now()""",
    "instrument_ids": """INSERT INTO instrument_ids (dataset, instrument_id, symbol, valid_from, valid_to)
        VALUES ($1, $2, $3, to_timestamp($4::bigint / 1e9), to_timestamp($5::bigint / 1e9))
        ON CONFLICT (dataset, instrument_id, valid_from) DO UPDATE SET symbol = EXCLUDED.symbol,
            valid_to = GREATEST(instrument_ids.valid_to, EXCLUDED.valid_to)""",
    "option_stats": """INSERT INTO option_stats
            (symbol, underlying, as_of, open_interest, close_price, volume, ts_event)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (symbol, as_of) DO UPDATE SET
            open_interest = COALESCE(EXCLUDED.open_interest, option_stats.open_interest),
            close_price = COALESCE(EXCLUDED.close_price, option_stats.close_price),
            volume = COALESCE(EXCLUDED.volume, option_stats.volume),
            ts_event = GREATEST(option_stats.ts_event, EXCLUDED.ts_event)""",
    "atm_iv_history": """INSERT INTO atm_iv_history (underlying, as_of, atm_iv, underlying_price)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (underlying, as_of) DO UPDATE SET atm_iv = EXCLUDED.atm_iv,
            underlying_price = EXCLUDED.underlying_price""",
    "data_quality_events": """INSERT INTO data_quality_events (source, kind, symbol, ts_event, detail)
        VALUES ($1, $2, $3, $4, $5)""",
    "quarantine": "INSERT INTO quarantine (source, reason, data) VALUES ($1, $2, $3)",
}
_ROW_ORDER = ("instruments", "instrument_ids", "option_stats", "atm_iv_history", "data_quality_events", "quarantine")


def _copy_dtype(cols: list[tuple[str, str]]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for name, t in cols:
        fields += [(f"_l_{name}", ">i4"), (name, ">" + t)]
    return np.dtype(fields)


_COPY_DTYPES = {t: _copy_dtype(c) for t, c in TABLES.items()}


def encode_binary_copy(table: str, cols: dict[str, npt.NDArray[Any]]) -> bytes:
    """PostgreSQL binary COPY payload for the staging table of ``table`` (fixed-width columns)."""
    spec = TABLES[table]
    n = int(cols[spec[0][0]].shape[0])
    rec = np.empty(n, dtype=_COPY_DTYPES[table])
    rec["_n"] = len(spec)
    for name, t in spec:
        rec[f"_l_{name}"] = np.dtype(t).itemsize
        rec[name] = cols[name]
    return _COPY_HEADER + rec.tobytes() + _COPY_TRAILER


_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds (timestamptz binary origin)
_NULLABLE = {"bid", "ask", "underlying_price"}  # NaN means NULL: such batches take the staging path


def _direct_layout(table: str) -> tuple[np.dtype[Any], list[str], list[str]]:
    """Binary COPY row layout straight into ``table``: fixed columns, then text columns last."""
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    fixed: list[str] = []
    text: list[str] = [c for c in ("sym", "und") if c in dict(TABLES[table])]
    for name, t in TABLES[table]:
        if name in ("sym", "und"):
            continue
        if name == "side":
            fields += [("_l_side", ">i4"), ("side", "S1")]
        else:
            fields += [(f"_l_{name}", ">i4"), (name, ">" + t)]
        fixed.append(name)
        if name == "ts_event":
            fields += [("_l_ts", ">i4"), ("ts", ">i8")]
            fixed.append("ts")
    return np.dtype(fields), fixed, text


_DIRECT = {t: _direct_layout(t) for t in TABLES}
_TEXT_TARGET = {"sym": "symbol", "und": "underlying"}


def direct_copy_columns(table: str) -> list[str]:
    """Target columns of :func:`encode_direct_copy`, in payload order."""
    _, fixed, text = _DIRECT[table]
    return [*fixed, *(_TEXT_TARGET[c] for c in text)]


def encode_direct_copy(table: str, cols: dict[str, npt.NDArray[Any]], symbols: dict[int, str]) -> bytes:
    """Binary COPY payload for the real table (symbol text + timestamptz included), built in NumPy."""
    dtype, fixed, text = _DIRECT[table]
    n = int(cols["ts_event"].shape[0])
    rec = np.empty(n, dtype=dtype)
    rec["_n"] = len(fixed) + len(text)
    for name in fixed:
        if name == "ts":
            rec["_l_ts"] = 8
            rec["ts"] = cols["ts_event"] // 1000 - _PG_EPOCH_US
        elif name == "side":
            rec["_l_side"] = 1
            rec["side"] = cols["side"].astype(np.uint8).view("S1")
        else:
            rec[f"_l_{name}"] = dtype[name].itemsize
            rec[name] = cols[name]
    fixed_b = rec.view(np.uint8).reshape(n, dtype.itemsize)
    # per row: fixed bytes, then for each text column a 4-byte length and the UTF-8 bytes
    lens = np.full(n, dtype.itemsize, dtype=np.int64)
    text_parts = []
    for c in text:
        codes = cols[c]
        uniq, inv = np.unique(codes, return_inverse=True)
        enc = [symbols[int(u)].encode() for u in uniq.tolist()]
        width = max(len(e) for e in enc)
        table_b = np.zeros((len(enc), 4 + width), dtype=np.uint8)
        ln = np.array([len(e) for e in enc], dtype=np.int64)
        for i, e in enumerate(enc):
            table_b[i, :4] = np.frombuffer(len(e).to_bytes(4, "big"), dtype=np.uint8)
            table_b[i, 4 : 4 + len(e)] = np.frombuffer(e, dtype=np.uint8)
        text_parts.append((table_b[inv], 4 + ln[inv]))
        lens += 4 + ln[inv]
    out = np.empty(int(lens.sum()), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = starts[:, None] + np.arange(dtype.itemsize)
    out[idx] = fixed_b
    pos = starts + dtype.itemsize
    for rows_b, used in text_parts:
        for k in np.unique(used).tolist():  # rows with the same text length move together
            m = used == k
            out[pos[m][:, None] + np.arange(k)] = rows_b[m, :k]
        pos = pos + used
    return _COPY_HEADER + out.tobytes() + _COPY_TRAILER


def _staging_ddl(table: str) -> str:
    cols = ", ".join(f"{n} {_PG_TYPES[t]}" for n, t in TABLES[table])
    return f"CREATE TEMP TABLE IF NOT EXISTS stg_{table} ({cols}) ON COMMIT DELETE ROWS"


def _insert_sql(table: str) -> str:
    target, select = _INSERTS[table]
    join = " JOIN stg_sym u ON u.code = s.und" if table == "option_quotes" else ""
    return (
        f"INSERT INTO {table} ({target}) SELECT {select} FROM stg_{table} s "
        f"JOIN stg_sym m ON m.code = s.sym{join} ON CONFLICT DO NOTHING"
    )


@dataclass
class WriterStats:
    """Counters for status and tests."""

    put_records: int = 0
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # rows inserted (new)
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # rows sent to PG
    spilled_records: int = 0
    spill_segments: int = 0
    dead_segments: int = 0
    errors: int = 0
    reconnects: int = 0
    dedup_batches: int = 0  # batches that hit a duplicate and went through staging + ON CONFLICT


class SpillStore:
    """Ordered zstd segment files (``<seq>.seg``) holding batches while PostgreSQL is away."""

    def __init__(self, directory: Path, level: int = 3) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cctx = zstandard.ZstdCompressor(level=level)
        segs = self.segments()
        self._next = int(segs[-1].stem) + 1 if segs else 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.seg"), key=lambda p: int(p.stem))

    def append(self, batch: Batch) -> Path:
        payload = pickle.dumps((batch.columns, dict(batch.rows), batch.symbols), protocol=5)
        path = self.dir / f"{self._next:012d}.seg"
        self._next += 1
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(self._cctx.compress(payload))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return path

    @staticmethod
    def read(path: Path) -> tuple[Any, Any, Any]:
        """Decompress and unpickle a segment (no shared state: safe in a worker thread)."""
        raw = zstandard.ZstdDecompressor().decompress(path.read_bytes())
        return pickle.loads(raw)  # type: ignore[no-any-return]  # our own files only

    @staticmethod
    def load(path: Path, symbols: SymbolTable = SYMBOLS) -> Batch:
        return SpillStore.rebuild(SpillStore.read(path), symbols)

    @staticmethod
    def rebuild(parts: tuple[Any, Any, Any], symbols: SymbolTable = SYMBOLS) -> Batch:
        """A batch from :meth:`read`'s parts, symbol codes remapped into ``symbols`` (event loop)."""
        columns, rows, syms = parts
        remap = {old: symbols.code(s) for old, s in syms.items()}
        lut = np.zeros(max(remap, default=0) + 1, dtype=np.int32)
        for old, new in remap.items():
            lut[old] = new
        b = Batch()
        for table, cols in columns.items():
            cols = dict(cols)
            for key in ("sym", "und"):
                if key in cols:
                    cols[key] = lut[cols[key]]
            b.add(table, cols)
        for t, r in rows.items():
            b.rows[t].extend(r)
        return b

    def move_dead(self, path: Path) -> None:
        dead = self.dir / "dead"
        dead.mkdir(exist_ok=True)
        path.replace(dead / path.name)


class Writer:
    """Batched idempotent writer with bounded queue and disk spill (see module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        spill_dir: Path,
        queue_records: int = 100_000,
        batch_records: int = 50_000,
        flush_interval_s: float = 0.25,
        connect_timeout_s: float = 5.0,
        max_backoff_s: float = 5.0,
        max_attempts: int = 5,
        symbols: SymbolTable = SYMBOLS,
        application_name: str = "aiots-writer",
        optimistic: bool = True,
    ) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.optimistic = optimistic
        self.queue_records = queue_records
        self.batch_records = batch_records
        self.flush_interval_s = flush_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self.symbols = symbols
        self.spill = SpillStore(spill_dir)
        self.stats = WriterStats()
        self._queue: list[Batch] = []
        self._queued = 0
        self._cond = asyncio.Condition()
        self._conn: asyncpg.Connection | None = None
        self._conn_codes: set[int] = set()
        self._known_days: dict[str, set[int]] = defaultdict(set)
        self._known_instruments: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False
        self._backoff = 0.1
        self._next_retry = 0.0
        self._attempts: dict[str, int] = defaultdict(int)

    # --- public API ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="storage-writer")

    @property
    def pending_records(self) -> int:
        """Records queued in memory plus spilled to disk."""
        return self._queued + self.stats.spilled_records

    async def put(self, batch: Batch) -> None:
        """Queue a batch; waits while the queue is full (backpressure)."""
        n = max(batch.total(), 1)
        async with self._cond:
            await self._cond.wait_for(lambda: self._queued == 0 or self._queued + n <= self.queue_records)
            self._queue.append(batch)
            self._queued += n
            self.stats.put_records += batch.total()
            self._cond.notify_all()

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until everything put so far is committed or spilled (True), or ``timeout`` (False)."""
        async with self._cond:
            self._cond.notify_all()
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self._queued == 0 and not self._busy), timeout)
            except TimeoutError:
                return False
        return True

    async def drained(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the spill is written back too (everything is in PostgreSQL)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.flush(max(deadline - time.monotonic(), 0.01)) and not self.spill.segments():
                return True
            self._next_retry = 0.0
            async with self._cond:
                self._cond.notify_all()
            await asyncio.sleep(0.05)
        return False

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Flush, try to write back the spill for up to ``timeout`` s, then stop. Spill files persist."""
        if self._task is None:
            return
        await self.drained(timeout)
        self._stopping = True
        async with self._cond:
            self._cond.notify_all()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    # --- loop ------------------------------------------------------------------------------
    async def _take(self) -> Batch | None:
        async with self._cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._queued >= self.batch_records or self._stopping),
                    self.flush_interval_s,
                )
            if not self._queue:
                return None
            items: list[Batch] = []
            n = 0
            while self._queue and (n < self.batch_records or not items):
                b = self._queue.pop(0)
                items.append(b)
                n += max(b.total(), 1)
            self._busy = True
            self._queued -= n
            self._cond.notify_all()
        return items[0] if len(items) == 1 else merge(items)

    async def _run(self) -> None:
        while True:
            batch = await self._take()
            try:
                if batch is not None:
                    await self._handle(batch)
                if self.spill.segments() and time.monotonic() >= self._next_retry:
                    await self._drain_spill()
            except Exception:  # never let the writer die: log and go on
                log.exception("storage writer iteration failed")
                self.stats.errors += 1
            finally:
                async with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if self._stopping and not self._queue:
                return

    async def _handle(self, batch: Batch) -> None:
        if not self.spill.segments():
            try:
                await self._write(batch)
                return
            except Exception as exc:
                self._on_failure(exc)
        # pickle + zstd + fsync: off the event loop (this runs exactly when PostgreSQL struggles)
        await asyncio.to_thread(self.spill.append, batch)
        self.stats.spilled_records += batch.total()
        self.stats.spill_segments += 1

    def _on_failure(self, exc: BaseException) -> None:
        self.stats.errors += 1
        log.warning("PostgreSQL write failed; spilling to disk", extra={"error": repr(exc)})
        self._drop_conn()
        self._next_retry = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.max_backoff_s)

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None

    async def _drain_spill(self) -> None:
        for path in self.spill.segments():
            batch = SpillStore.rebuild(await asyncio.to_thread(SpillStore.read, path), self.symbols)
            try:
                await self._write(batch)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                self._attempts[path.name] += 1
                self._on_failure(exc)
                if self._attempts[path.name] >= self.max_attempts:
                    log.error("spill segment rejected repeatedly; moved to dead/", extra={"segment": path.name})
                    self.spill.move_dead(path)
                    self.stats.dead_segments += 1
                    self.stats.spilled_records -= batch.total()
                return
            except Exception as exc:
                self._on_failure(exc)
                return
            path.unlink()
            self.stats.spilled_records = max(0, self.stats.spilled_records - batch.total())
        self._backoff = 0.1

    # --- PostgreSQL ------------------------------------------------------------------------
    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout_s, server_settings={"application_name": self.application_name}
        )
        try:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS stg_sym (code int4 PRIMARY KEY, symbol text NOT NULL)")
            for t in TABLES:
                await conn.execute(_staging_ddl(t))
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._conn_codes = set()
        self.stats.reconnects += 1
        return conn

    async def _write(self, batch: Batch) -> None:
        conn = await self._connection()
        missing = [(c, s) for c, s in batch.symbols.items() if c not in self._conn_codes]
        if missing:
            await conn.copy_records_to_table("stg_sym", records=missing, columns=["code", "symbol"])
            self._conn_codes.update(c for c, _ in missing)
        for table, cols in batch.columns.items():
            if table in PARTITIONED_TABLES:
                days = set(np.unique(cols["ts_event"] // NS_PER_DAY).tolist()) - self._known_days[table]
                for day in sorted(days):  # only the days present: never a range across a gap
                    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
                    await ensure_partitions(conn, [table], d, d)
                    self._known_days[table].add(day)
        new_instr = [s for s in batch.symbols.values() if s not in self._known_instruments]
        rows = dict(batch.rows)
        extra = []
        for s in new_instr:
            inf = instrument_info(s)
            extra.append((s, inf.kind, inf.underlying, inf.strike, inf.expiry, inf.right, inf.multiplier, ""))
        async with conn.transaction():
            if new_instr:
                await conn.executemany(
                    """INSERT INTO instruments
                           (symbol, kind, underlying, strike, expiry, option_right, multiplier, dataset)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (symbol) DO NOTHING""",
                    extra,
                )
            for t in _ROW_ORDER:
                r = rows.get(t)
                if r:
                    await conn.executemany(_ROW_SQL[t], r)
            counts: dict[str, int] = {}
            for table, cols in batch.columns.items():
                if self.optimistic and not any(np.isnan(cols[c]).any() for c in _NULLABLE if c in cols):
                    # fresh data (the common case): one binary COPY straight into the table, in a
                    # savepoint; a duplicate key rolls it back and the batch takes the dedup path
                    try:
                        async with conn.transaction():
                            await conn.copy_to_table(
                                table,
                                source=io.BytesIO(encode_direct_copy(table, cols, batch.symbols)),
                                format="binary",
                                columns=direct_copy_columns(table),
                            )
                        counts[table] = batch.count(table)
                        continue
                    except asyncpg.UniqueViolationError:
                        self.stats.dedup_batches += 1
                payload = encode_binary_copy(table, cols)
                await conn.copy_to_table(
                    f"stg_{table}", source=io.BytesIO(payload), format="binary", columns=[n for n, _ in TABLES[table]]
                )
                status = await conn.execute(_insert_sql(table))
                counts[table] = int(status.rsplit(" ", 1)[-1])
        for table, n in counts.items():
            self.stats.written[table] += n
            self.stats.received[table] += batch.count(table)
        self._known_instruments.update(new_instr)


def stock_symbols(batch: Batch) -> list[str]:
    """Stock tickers in a batch."""
    return [s for s in batch.symbols.values() if instrument_info(s).kind == KIND_STOCK]
