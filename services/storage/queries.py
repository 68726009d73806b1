"""Typed read API over the market-data tables, for the analytics, signals and ingestion services.

Conventions: times are int64 ns UTC (``ts`` arrays), prices float64 dollars (option premiums per
share), sizes float64 (shares or contracts), dates ``datetime64[D]`` (America/New_York session
dates). Bulk results are NumPy arrays in small frozen dataclasses, oldest first.

Functions (``pool`` is an ``asyncpg.Pool`` or connection):

- :func:`get_bars` ``(pool, symbol, interval="1m", start_ns=None, end_ns=None, limit=10_000) -> Bars``
  intervals 1s/1m/1d stored; 5m/15m/1h rolled up from 1m with epoch-aligned buckets (bucket =
  floor(ts/width)*width; the same on TimescaleDB, whose continuous aggregates use time_bucket).
  The latest ``limit`` bars in [start_ns, end_ns) are returned.
- :func:`latest_option_chain` ``(pool, underlying, expiry=None) -> OptionChain``: every listed
  contract not yet expired (or of one expiry) with its latest quote of the latest quoted session,
  last trade and volume of that session, the latest open interest (and its date).
- :func:`atm_iv_history` ``(pool, underlying, days=252) -> AtmIvHistory``: daily ATM IV.
- :func:`known_symbols` ``(pool) -> list[str]``: stock tickers known to the system.
- :func:`get_trades`, :func:`list_instruments`, :func:`option_definitions`,
  :func:`latest_quote`: smaller helpers used by the ingestion service.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv
from aiots.services.common.errors import InvalidArgument
from aiots.services.storage.migrate import engine_of

INTERVAL_NS: dict[str, int] = {
    "1s": cv.NS_PER_S,
    "1m": cv.NS_PER_MIN,
    "5m": 5 * cv.NS_PER_MIN,
    "15m": 15 * cv.NS_PER_MIN,
    "1h": cv.NS_PER_HOUR,
    "1d": cv.NS_PER_DAY,
}
STORED_INTERVALS = {"1s": "bars_1s", "1m": "bars_1m", "1d": "bars_1d"}
ROLLED_INTERVALS = ("5m", "15m", "1h")
MAX_NS = 2**63 - 1

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DateArr = npt.NDArray[np.datetime64]
Conn: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


@dataclass(frozen=True)
class Bars:
    """OHLCV bars, oldest first. ``ts`` is the bar open time (ns UTC)."""

    symbol: str
    interval: str
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    vwap: F64
    trade_count: I64

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class OptionChain:
    """One underlying's chain, sorted by expiry, strike, right. NaN where nothing is known.

    ``oi_as_of`` is NaT when no open interest was seen; ``ts`` is 0 when the contract has no quote.
    ``underlying_price`` is per contract (at its quote); ``spot`` the latest underlying price.
    """

    underlying: str
    occ: list[str]
    expiry: DateArr
    strike: F64
    right: npt.NDArray[np.str_]
    bid: F64
    ask: F64
    last: F64
    volume: F64
    open_interest: F64
    oi_as_of: DateArr
    ts: I64
    underlying_price: F64
    spot: float
    session: dt.date | None = None  # the session the quotes come from (None: nothing quoted)
    market_closed: bool = False  # True when answered from the last session while the market is closed

    def __len__(self) -> int:
        return len(self.occ)


@dataclass(frozen=True)
class AtmIvHistory:
    """Daily ATM implied volatility (annualised), oldest first."""

    underlying: str
    dates: DateArr
    iv: F64
    underlying_price: F64

    def __len__(self) -> int:
        return int(self.dates.shape[0])


@dataclass(frozen=True)
class TradeRows:
    """Trades, oldest first."""

    symbol: str
    ts: I64
    price: F64
    size: F64
    side: list[str]
    publisher_id: npt.NDArray[np.int64]
    sequence: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def session_start_ns(ts_ns: int) -> int:
    """Midnight America/New_York of the session date containing ``ts_ns``, in ns UTC."""
    return cv.ny_midnight_ns(cv.ny_date(ts_ns))


session_date = cv.ny_date  # the session (New York) date of an instant


def not_a_session(field: str, day: dt.date) -> InvalidArgument | None:
    """INVALID_ARGUMENT naming the nearest sessions when ``day`` is not an NYSE session, else None."""
    try:
        cv.calendar().session(day)
    except cv.NotASession as exc:
        return InvalidArgument(field, str(exc), reason="NOT_A_SESSION")
    return None


def _window_day_closed(start_ns: int | None, end_ns: int | None) -> dt.date | None:
    """The New York date of a [start, end) window lying inside one day that is not a session."""
    if start_ns is None or end_ns is None or end_ns <= start_ns:
        return None
    day = cv.ny_date(start_ns)
    if cv.ny_date(end_ns - 1) != day or cv.calendar().is_session(day):
        return None
    return day


def _f64(rows: list[Any], i: int) -> F64:
    return np.array([np.nan if r[i] is None else r[i] for r in rows], dtype=np.float64)


def _i64(rows: list[Any], i: int) -> I64:
    return np.array([0 if r[i] is None else r[i] for r in rows], dtype=np.int64)


async def get_bars(
    pool: Conn,
    symbol: str,
    interval: str = "1m",
    start_ns: int | None = None,
    end_ns: int | None = None,
    limit: int = 10_000,
) -> Bars:
    """The latest ``limit`` bars of ``symbol`` in [start_ns, end_ns), oldest first."""
    if interval not in INTERVAL_NS:
        raise ValueError(f"interval {interval!r} not supported; use one of {sorted(INTERVAL_NS)}")
    lo = 0 if start_ns is None else int(start_ns)
    hi = MAX_NS if end_ns is None else int(end_ns)
    sym = symbol.upper()
    if interval in STORED_INTERVALS:
        sql = f"""SELECT ts_event, open, high, low, close, volume, vwap, trade_count
                    FROM {STORED_INTERVALS[interval]}
                   WHERE symbol = $1 AND ts_event >= $2 AND ts_event < $3
                   ORDER BY ts_event DESC LIMIT $4"""
        rows = await pool.fetch(sql, sym, lo, hi, limit)
    elif await engine_of(pool) == "timescale":
        sql = f"""SELECT ts_event, open, high, low, close, volume, vwap, trade_count FROM bars_{interval}
                   WHERE symbol = $1 AND ts_event >= $2 AND ts_event < $3
                   ORDER BY ts_event DESC LIMIT $4"""
        rows = await pool.fetch(sql, sym, lo, hi, limit)
    else:
        width = INTERVAL_NS[interval]
        # The bucket containing `lo` starts before it: widen to whole buckets so the first bar is complete.
        lo_b = (lo // width) * width
        sql = """SELECT (ts_event / $5) * $5 AS b,
                        (array_agg(open ORDER BY ts_event))[1],
                        max(high), min(low),
                        (array_agg(close ORDER BY ts_event DESC))[1],
                        sum(volume),
                        coalesce(sum(vwap * volume) / nullif(sum(volume), 0), 0),
                        sum(trade_count)::bigint
                   FROM bars_1m
                  WHERE symbol = $1 AND ts_event >= $2 AND ts_event < $3
                  GROUP BY b ORDER BY b DESC LIMIT $4"""
        rows = await pool.fetch(sql, sym, lo_b, hi, limit, width)
    closed = _window_day_closed(start_ns, end_ns) if not rows else None
    if closed is not None:  # a window inside a holiday or weekend: say which sessions are near
        err = not_a_session("start", closed)
        if err is not None:
            raise err
    rows.reverse()
    return Bars(
        symbol=sym,
        interval=interval,
        ts=_i64(rows, 0),
        open=_f64(rows, 1),
        high=_f64(rows, 2),
        low=_f64(rows, 3),
        close=_f64(rows, 4),
        volume=_f64(rows, 5),
        vwap=_f64(rows, 6),
        trade_count=_i64(rows, 7),
    )


async def latest_quote(pool: Conn, symbol: str) -> tuple[int, float, float, float, float] | None:
    """(ts_ns, bid, ask, bid_size, ask_size) of the latest stored stock quote, or None."""
    r = await pool.fetchrow(
        "SELECT ts_event, bid, ask, bid_size, ask_size FROM quotes WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
        symbol.upper(),
    )
    return None if r is None else (r[0], r[1], r[2], r[3], r[4])


async def latest_price(pool: Conn, symbol: str) -> float:
    """Latest known price of a stock: last trade, else last 1m close, else last daily close; NaN if none."""
    sym = symbol.upper()
    for sql in (
        "SELECT price FROM trades WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
        "SELECT close FROM bars_1m WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
        "SELECT close FROM bars_1d WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
    ):
        v = await pool.fetchval(sql, sym)
        if v is not None:
            return float(v)
    return float("nan")


_CHAIN_SQL = """
WITH c AS (
    SELECT symbol, expiry, strike, option_right FROM instruments
     WHERE underlying = $1 AND kind = 2 AND expiry >= $2 AND ($3::date IS NULL OR expiry = $3)
), q AS (
    SELECT DISTINCT ON (symbol) symbol, ts_event, bid, ask, underlying_price FROM option_quotes
     WHERE underlying = $1 AND ts_event >= $4 ORDER BY symbol, ts_event DESC
), s AS (
    SELECT DISTINCT ON (symbol) symbol, as_of, open_interest FROM option_stats
     WHERE underlying = $1 AND open_interest IS NOT NULL ORDER BY symbol, as_of DESC
), t AS (
    SELECT symbol, sum(size) AS volume, (array_agg(price ORDER BY ts_event DESC))[1] AS last FROM trades
     WHERE symbol IN (SELECT symbol FROM c) AND ts_event >= $4 GROUP BY symbol
)
SELECT c.symbol, c.expiry, c.strike, c.option_right, q.bid, q.ask, t.last, t.volume,
       s.open_interest, s.as_of, q.ts_event, q.underlying_price
  FROM c LEFT JOIN q USING (symbol) LEFT JOIN s USING (symbol) LEFT JOIN t USING (symbol)
 ORDER BY c.expiry, c.strike, c.option_right
"""


async def latest_option_chain(
    pool: Conn, underlying: str, expiry: dt.date | str | None = None, *, now_ns: int | None = None
) -> OptionChain:
    """The chain of ``underlying`` as of its latest quoted session (see module docstring).

    Contracts expiring before the latest quoted session (or before today when nothing is quoted)
    are left out unless ``expiry`` names them explicitly.
    """
    und = underlying.upper()
    exp = dt.date.fromisoformat(expiry) if isinstance(expiry, str) else expiry
    last_ts = await pool.fetchval("SELECT max(ts_event) FROM option_quotes WHERE underlying = $1", und)
    ref_ns = int(last_ts) if last_ts is not None else (now_ns if now_ns is not None else dt_now_ns())
    sess_start = session_start_ns(ref_ns)
    min_expiry = exp if exp is not None else session_date(ref_ns)
    rows = await pool.fetch(_CHAIN_SQL, und, min_expiry, exp, sess_start)
    if exp is not None and not rows and (err := not_a_session("expiry", exp)) is not None:
        raise err
    spot = await latest_price(pool, und)
    quoted = session_date(int(last_ts)) if last_ts is not None else None
    now = now_ns if now_ns is not None else dt_now_ns()
    closed = quoted is not None and cv.calendar().phase(now) == "closed"
    oi_dates = np.array(
        [np.datetime64(r[9], "D") if r[9] is not None else np.datetime64("NaT", "D") for r in rows],
        dtype="datetime64[D]",
    )
    return OptionChain(
        underlying=und,
        occ=[r[0] for r in rows],
        expiry=np.array([np.datetime64(r[1], "D") for r in rows], dtype="datetime64[D]"),
        strike=_f64(rows, 2),
        right=np.array([r[3] for r in rows], dtype="<U1"),
        bid=_f64(rows, 4),
        ask=_f64(rows, 5),
        last=_f64(rows, 6),
        volume=np.nan_to_num(_f64(rows, 7), nan=0.0),
        open_interest=_f64(rows, 8),
        oi_as_of=oi_dates,
        ts=_i64(rows, 10),
        underlying_price=_f64(rows, 11),
        spot=spot,
        session=quoted,
        market_closed=closed,
    )


def dt_now_ns() -> int:
    """Current wall time in ns UTC."""
    return cv.datetime_to_ns(dt.datetime.now(cv.UTC))


async def atm_iv_history(pool: Conn, underlying: str, days: int = 252) -> AtmIvHistory:
    """The latest ``days`` daily ATM IVs of ``underlying``, oldest first."""
    rows = await pool.fetch(
        """SELECT as_of, atm_iv, underlying_price FROM atm_iv_history WHERE underlying = $1
            ORDER BY as_of DESC LIMIT $2""",
        underlying.upper(),
        days,
    )
    rows.reverse()
    return AtmIvHistory(
        underlying=underlying.upper(),
        dates=np.array([np.datetime64(r[0], "D") for r in rows], dtype="datetime64[D]"),
        iv=_f64(rows, 1),
        underlying_price=_f64(rows, 2),
    )


async def known_symbols(pool: Conn) -> list[str]:
    """Stock tickers known to the system (instruments of kind stock), sorted."""
    rows = await pool.fetch("SELECT symbol FROM instruments WHERE kind = 1 ORDER BY symbol")
    return [r[0] for r in rows]


async def get_trades(
    pool: Conn, symbol: str, start_ns: int | None = None, end_ns: int | None = None, limit: int = 1000
) -> TradeRows:
    """The latest ``limit`` trades of ``symbol`` (ticker or OCC) in [start_ns, end_ns), oldest first."""
    rows = await pool.fetch(
        """SELECT ts_event, price, size, side, publisher_id, sequence FROM trades
            WHERE symbol = $1 AND ts_event >= $2 AND ts_event < $3 ORDER BY ts_event DESC LIMIT $4""",
        symbol if len(symbol) == 21 else symbol.upper(),
        0 if start_ns is None else start_ns,
        MAX_NS if end_ns is None else end_ns,
        limit,
    )
    rows.reverse()
    return TradeRows(
        symbol=symbol,
        ts=_i64(rows, 0),
        price=_f64(rows, 1),
        size=_f64(rows, 2),
        side=[r[3] for r in rows],
        publisher_id=_i64(rows, 4),
        sequence=_i64(rows, 5),
    )


@dataclass(frozen=True)
class InstrumentRow:
    """One instrument with its latest Databento id mapping (instrument_id 0 when none)."""

    symbol: str
    kind: int
    underlying: str
    strike: float | None
    expiry: dt.date | None
    right: str | None
    multiplier: int
    dataset: str
    instrument_id: int
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None


_INSTR_SQL = """
SELECT i.symbol, i.kind, i.underlying, i.strike, i.expiry, i.option_right, i.multiplier, i.dataset,
       m.instrument_id, m.valid_from, m.valid_to
  FROM instruments i
  LEFT JOIN LATERAL (SELECT instrument_id, valid_from, valid_to FROM instrument_ids x
                      WHERE x.symbol = i.symbol ORDER BY valid_to DESC LIMIT 1) m ON TRUE
"""


def _instr(r: Any) -> InstrumentRow:
    return InstrumentRow(
        symbol=r[0],
        kind=r[1],
        underlying=r[2],
        strike=r[3],
        expiry=r[4],
        right=r[5],
        multiplier=r[6],
        dataset=r[7],
        instrument_id=r[8] or 0,
        valid_from=r[9],
        valid_to=r[10],
    )


async def list_instruments(
    pool: Conn, underlying: str | None = None, kind: int | None = None, after: str = "", limit: int = 100
) -> list[InstrumentRow]:
    """Instruments ordered by symbol, after ``after`` (keyset pagination)."""
    rows = await pool.fetch(
        _INSTR_SQL
        + """ WHERE ($1::text IS NULL OR i.underlying = $1) AND ($2::smallint IS NULL OR i.kind = $2)
              AND i.symbol > $3 ORDER BY i.symbol LIMIT $4""",
        underlying.upper() if underlying else None,
        kind,
        after,
        limit,
    )
    return [_instr(r) for r in rows]


async def option_definitions(pool: Conn, underlying: str, expiry: dt.date | None = None) -> list[InstrumentRow]:
    """Option contracts of ``underlying`` (optionally one expiry), sorted by expiry, strike, right."""
    rows = await pool.fetch(
        _INSTR_SQL
        + """ WHERE i.underlying = $1 AND i.kind = 2 AND ($2::date IS NULL OR i.expiry = $2)
              ORDER BY i.expiry, i.strike, i.option_right""",
        underlying.upper(),
        expiry,
    )
    if expiry is not None and not rows and (err := not_a_session("expiry", expiry)) is not None:
        raise err
    return [_instr(r) for r in rows]
