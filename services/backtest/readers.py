"""Readers for the data users have: normalised OHLCV CSV (1-minute and daily), the intraday
option quote-bar and trade-bar CSV of ``shared/data/options-intraday``, option chain snapshots
in the normalised options schema, gzip (by the ``.gz`` suffix) and Databento DBN (official client).

Every reader validates the whole file before returning anything: a bad file raises
:class:`DataFileError` naming the file, the row (1-based data row; the CSV line is row + 1) and
the column. Nothing is half-loaded. Times in files are US/Eastern naive (bar **start** for bars);
they come out as int64 ns UTC. An empty bid or ask in a quote bar means that side had no quote:
it becomes NaN, never zero.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiots.core.conventions import NS_PER_MIN, NS_PER_S, NY, REGULAR_CLOSE, REGULAR_OPEN, InvalidSymbol, parse_occ

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NY_TZ = NY  # the New York zone (aiots.core.conventions.NY)
DAILY_BAR_NS = (
    int(
        (
            dt.datetime.combine(dt.date(2000, 1, 3), REGULAR_CLOSE)
            - dt.datetime.combine(dt.date(2000, 1, 3), REGULAR_OPEN)
        ).total_seconds()
    )
    * NS_PER_S
)


class DataFileError(ValueError):
    """A file that cannot be used; names the file, the data row (1-based) and the column."""

    def __init__(self, path: str | Path, message: str, row: int | None = None, column: str | None = None) -> None:
        self.path, self.row, self.column = str(path), row, column
        where = "".join(
            [f", row {row} (line {row + 1})" if row is not None else "", f", column '{column}'" if column else ""]
        )
        super().__init__(f"{self.path}{where}: {message}")


@dataclass(frozen=True)
class BarSeries:
    """One symbol's bars, ascending: ``ts_ns`` is the bar start (ns UTC), prices in dollars."""

    symbol: str
    ts_ns: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    interval_ns: int
    source: str

    def __len__(self) -> int:
        return int(self.ts_ns.size)


@dataclass(frozen=True)
class OptionQuoteBars:
    """Option quote bars: ``ts_ns`` is the bar **end** (when its close quote was known), ns UTC.

    ``bid``/``ask`` are the closing quotes (NaN = that side had no quote), sizes in contracts.
    """

    ts_ns: I64
    occ: npt.NDArray[np.object_]
    underlying: npt.NDArray[np.object_]
    expiry: npt.NDArray[np.object_]  # ISO dates
    is_call: npt.NDArray[np.bool_]
    strike: F64
    bid: F64
    ask: F64
    bid_size: F64
    ask_size: F64
    source: str

    def __len__(self) -> int:
        return int(self.ts_ns.size)


@dataclass(frozen=True)
class OptionTradeBars:
    """Option trade bars: ``ts_ns`` is the bar end, prices per share, volume in contracts."""

    ts_ns: I64
    occ: npt.NDArray[np.object_]
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    source: str


@dataclass(frozen=True)
class ChainSnapshots:
    """Chain snapshot rows (normalised options schema); ``ts_ns`` is the snapshot time (ns UTC)."""

    #: columns ts_ns, underlying, underlying_price, expiration, is_call, strike, bid, ask, implied_vol,
    #: open_interest, volume
    frame: pd.DataFrame
    source: str


# --- helpers ----------------------------------------------------------------------------------
def _read_csv(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataFileError(p, "no such file")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataFileError(p, "the file is empty (no header)") from None
    except pd.errors.ParserError as exc:
        raise DataFileError(p, f"malformed CSV: {exc}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataFileError(p, f"unreadable (corrupt or truncated compressed file?): {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(p, f"not UTF-8 text at byte {exc.start}") from None


def _require(df: pd.DataFrame, path: str | Path, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; found {list(df.columns)}", column=missing[0])
    if df.empty:
        raise DataFileError(path, "no data rows")


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _num(df: pd.DataFrame, col: str, path: str | Path, *, allow_empty: bool = False, non_negative: bool = True) -> F64:
    raw = df[col].astype(str).str.strip()
    empty = (raw == "").to_numpy()
    vals = pd.to_numeric(raw.mask(raw == ""), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals) & ~empty
    if bad.any():
        i = _first(bad)
        raise DataFileError(path, f"{raw.iat[i]!r} is not a finite number", row=i + 1, column=col)
    if empty.any() and not allow_empty:
        raise DataFileError(path, "empty value (a number is required)", row=_first(empty) + 1, column=col)
    if non_negative:
        neg = np.isfinite(vals) & (vals < 0)
        if neg.any():
            i = _first(neg)
            raise DataFileError(path, f"{vals[i]} is negative (must be >= 0)", row=i + 1, column=col)
    out: F64 = vals
    return out


def _times(df: pd.DataFrame, col: str, path: str | Path, fmt: str) -> I64:
    """Naive New York wall-clock strings -> ns UTC."""
    raw = df[col].astype(str).str.strip()
    parsed = pd.to_datetime(raw, format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = _first(bad)
        want = "YYYY-MM-DD HH:MM:SS" if "%H" in fmt else "YYYY-MM-DD"
        raise DataFileError(path, f"{raw.iat[i]!r} is not a time in the form {want}", row=i + 1, column=col)
    local = parsed.dt.tz_localize(NY_TZ, ambiguous="NaT", nonexistent="NaT")
    bad = local.isna().to_numpy()
    if bad.any():
        i = _first(bad)
        raise DataFileError(
            path, f"{raw.iat[i]!r} is not a valid New York local time (DST gap/overlap)", row=i + 1, column=col
        )
    return np.asarray(local.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy(), dtype=np.int64)


# --- OHLCV ------------------------------------------------------------------------------------
def read_bars(path: str | Path) -> dict[str, BarSeries]:
    """Normalised OHLCV CSV (``datetime`` 1-minute or ``date`` daily), one or more symbols.

    Daily bars start at 09:30 ET and span the regular session (6.5 h), so their close falls at 16:00.
    Checks: numbers, no negatives, low <= min(open, close) <= max(open, close) <= high, times
    strictly increasing per symbol.
    """
    df = _read_csv(path)
    if "datetime" in df.columns:
        _require(df, path, ["datetime", "symbol", "open", "high", "low", "close", "volume"])
        ts = _times(df, "datetime", path, "%Y-%m-%d %H:%M:%S")
        interval = NS_PER_MIN
    elif "date" in df.columns:
        _require(df, path, ["date", "symbol", "open", "high", "low", "close", "volume"])
        ts = _times(df, "date", path, "%Y-%m-%d") + (9 * 60 + 30) * NS_PER_MIN
        interval = DAILY_BAR_NS
    else:
        raise DataFileError(path, f"needs a 'datetime' or 'date' column; found {list(df.columns)}", column="datetime")
    o, h, lo, c = (_num(df, k, path) for k in ("open", "high", "low", "close"))
    v = _num(df, "volume", path)
    bad = (lo > np.minimum(o, c)) | (np.maximum(o, c) > h)
    if bad.any():
        i = _first(bad)
        raise DataFileError(
            path,
            f"low {lo[i]} <= min(open, close) <= max(open, close) <= high {h[i]} does not hold",
            row=i + 1,
            column="high",
        )
    sym = df["symbol"].astype(str).str.strip().str.upper().to_numpy()
    empty = sym == ""
    if empty.any():
        raise DataFileError(path, "empty symbol", row=_first(empty) + 1, column="symbol")
    out: dict[str, BarSeries] = {}
    for s in sorted(set(sym.tolist())):
        idx = np.flatnonzero(sym == s)
        t = ts[idx]
        step = np.diff(t)
        if (step <= 0).any():
            j = int(idx[_first(step <= 0) + 1])
            col = "datetime" if interval == NS_PER_MIN else "date"
            raise DataFileError(
                path, f"time not after the previous {s} row (duplicate or out of order)", row=j + 1, column=col
            )
        out[s] = BarSeries(s, t, o[idx], h[idx], lo[idx], c[idx], v[idx], interval, str(path))
    return out


# --- intraday options -------------------------------------------------------------------------
def _contract_fields(
    df: pd.DataFrame, path: str | Path
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_], npt.NDArray[np.object_], npt.NDArray[np.bool_], F64]:
    occ_raw = df["option_symbol"].astype(str).to_numpy()
    occ = np.empty(len(occ_raw), dtype=object)
    expiry = np.empty(len(occ_raw), dtype=object)
    is_call = np.empty(len(occ_raw), dtype=bool)
    strike = np.empty(len(occ_raw), dtype=np.float64)
    cache: dict[str, tuple[str, str, bool, float]] = {}
    for i, s in enumerate(occ_raw):
        hit = cache.get(s)
        if hit is None:
            try:
                p = parse_occ(s, "option_symbol")
            except InvalidSymbol as exc:
                raise DataFileError(path, str(exc), row=i + 1, column="option_symbol") from None
            hit = cache[s] = (p.symbol, p.expiry.isoformat(), p.right == "C", p.strike)
        occ[i], expiry[i], is_call[i], strike[i] = hit
    und = df["underlying"].astype(str).str.strip().str.upper().to_numpy(dtype=object)
    if "strike" in df.columns:
        k = _num(df, "strike", path)
        bad = np.abs(k - strike) > 1e-6
        if bad.any():
            i = _first(bad)
            raise DataFileError(
                path, f"strike {k[i]} disagrees with option_symbol {occ_raw[i]!r}", row=i + 1, column="strike"
            )
    return occ, und, expiry, is_call, strike


def _check_contract_times(path: str | Path, ts: I64, occ: npt.NDArray[np.object_]) -> None:
    order = np.lexsort((ts, occ.astype(str)))
    same = occ[order][1:] == occ[order][:-1]
    dup = same & (np.diff(ts[order]) == 0)
    if dup.any():
        i = int(order[_first(dup) + 1])
        raise DataFileError(path, f"duplicate bar for {occ[i]} at this time", row=i + 1, column="datetime")


def read_option_quote_bars(path: str | Path, interval_ns: int = NS_PER_MIN) -> OptionQuoteBars:
    """Intraday option quote bars (``bid_close``/``ask_close`` used; empty side = no quote)."""
    df = _read_csv(path)
    _require(df, path, ["datetime", "underlying", "bid_close", "bid_size", "ask_close", "ask_size", "option_symbol"])
    start = _times(df, "datetime", path, "%Y-%m-%d %H:%M:%S")
    occ, und, expiry, is_call, strike = _contract_fields(df, path)
    bid = _num(df, "bid_close", path, allow_empty=True)
    ask = _num(df, "ask_close", path, allow_empty=True)
    bsz = _num(df, "bid_size", path, allow_empty=True)
    asz = _num(df, "ask_size", path, allow_empty=True)
    _check_contract_times(path, start, occ)
    ts = start + interval_ns
    order = np.argsort(ts, kind="stable")
    return OptionQuoteBars(
        ts[order],
        occ[order],
        und[order],
        expiry[order],
        is_call[order],
        strike[order],
        bid[order],
        ask[order],
        bsz[order],
        asz[order],
        str(path),
    )


def read_option_trade_bars(path: str | Path, interval_ns: int = NS_PER_MIN) -> OptionTradeBars:
    """Intraday option trade bars (OHLCV per contract and minute)."""
    df = _read_csv(path)
    _require(df, path, ["datetime", "underlying", "open", "high", "low", "close", "volume", "option_symbol"])
    start = _times(df, "datetime", path, "%Y-%m-%d %H:%M:%S")
    occ, _und, _e, _c, _k = _contract_fields(df, path)
    o, h, lo, c = (_num(df, k, path) for k in ("open", "high", "low", "close"))
    v = _num(df, "volume", path)
    bad = (lo > np.minimum(o, c)) | (np.maximum(o, c) > h)
    if bad.any():
        i = _first(bad)
        raise DataFileError(
            path, "low <= min(open, close) <= max(open, close) <= high does not hold", row=i + 1, column="high"
        )
    _check_contract_times(path, start, occ)
    ts = start + interval_ns
    order = np.argsort(ts, kind="stable")
    return OptionTradeBars(ts[order], occ[order], o[order], h[order], lo[order], c[order], v[order], str(path))


# --- chain snapshots --------------------------------------------------------------------------
CHAIN_COLUMNS = ("underlying", "quote_date", "expiration", "option_type", "strike", "bid", "ask")


def read_chains(path: str | Path) -> ChainSnapshots:
    """Option chain snapshots in the normalised options schema (multi-day, gzip or plain).

    The snapshot time is ``snapshot_commit_et`` when present (intraday yfinance snapshots), else
    the quote date's 16:00 ET close. bid = ask = 0 means no quote (kept, flagged by NaN mid).
    """
    df = _read_csv(path)
    _require(df, path, CHAIN_COLUMNS)
    if "snapshot_commit_et" in df.columns and (df["snapshot_commit_et"].astype(str).str.strip() != "").all():
        ts = _times(df, "snapshot_commit_et", path, "%Y-%m-%d %H:%M:%S")
    else:
        ts = _times(df, "quote_date", path, "%Y-%m-%d") + 16 * 60 * NS_PER_MIN
    exp = pd.to_datetime(df["expiration"].astype(str).str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = exp.isna().to_numpy()
    if bad.any():
        i = _first(bad)
        raise DataFileError(
            path, f"{df['expiration'].iat[i]!r} is not a date YYYY-MM-DD", row=i + 1, column="expiration"
        )
    right = df["option_type"].astype(str).str.strip().str.upper().str[:1].to_numpy()
    bad = ~np.isin(right, ["C", "P"])
    if bad.any():
        i = _first(bad)
        raise DataFileError(path, f"{df['option_type'].iat[i]!r} is not C or P", row=i + 1, column="option_type")
    frame = pd.DataFrame(
        {
            "ts_ns": ts,
            "underlying": df["underlying"].astype(str).str.strip().str.upper().to_numpy(),
            "underlying_price": _num(df, "underlying_price", path, allow_empty=True)
            if "underlying_price" in df.columns
            else np.nan,
            "expiration": exp.dt.date.astype(str).to_numpy(),
            "is_call": right == "C",
            "strike": _num(df, "strike", path),
            "bid": _num(df, "bid", path, allow_empty=True),
            "ask": _num(df, "ask", path, allow_empty=True),
            "implied_vol": _num(df, "implied_vol", path, allow_empty=True) if "implied_vol" in df.columns else np.nan,
            "open_interest": _num(df, "open_interest", path, allow_empty=True)
            if "open_interest" in df.columns
            else np.nan,
            "volume": _num(df, "volume", path, allow_empty=True) if "volume" in df.columns else np.nan,
        }
    )
    return ChainSnapshots(frame, str(path))


# --- Databento DBN ----------------------------------------------------------------------------
def read_dbn_bars(path: str | Path) -> dict[str, BarSeries]:
    """OHLCV bars from a DBN file (``ohlcv-1m``/``1h``/``1d``/``1s``) through the official client."""
    import databento as db

    p = Path(path)
    if not p.is_file():
        raise DataFileError(p, "no such file")
    try:
        store = db.DBNStore.from_file(p)
        schema = str(store.schema)
        df = store.to_df(pretty_ts=False, map_symbols=True)
    except Exception as exc:  # the client raises several types for corrupt input
        raise DataFileError(p, f"not a readable DBN file: {exc}") from None
    intervals = {
        "ohlcv-1s": NS_PER_S,
        "ohlcv-1m": NS_PER_MIN,
        "ohlcv-1h": 60 * NS_PER_MIN,
        "ohlcv-1d": 24 * 60 * NS_PER_MIN,
    }
    if schema not in intervals:
        raise DataFileError(p, f"schema {schema!r} holds no bars; expected one of {sorted(intervals)}", column="schema")
    if df.empty:
        raise DataFileError(p, "no records")
    ts = np.asarray(df.index.to_numpy(dtype=np.int64), dtype=np.int64)
    out: dict[str, BarSeries] = {}
    syms = (
        df["symbol"].astype(str).to_numpy()
        if "symbol" in df.columns
        else np.full(len(df), str(store.symbols[0] if store.symbols else "?"))
    )
    for s in sorted(set(syms.tolist())):
        m = syms == s
        out[s] = BarSeries(
            s,
            ts[m],
            df["open"].to_numpy(np.float64)[m],
            df["high"].to_numpy(np.float64)[m],
            df["low"].to_numpy(np.float64)[m],
            df["close"].to_numpy(np.float64)[m],
            df["volume"].to_numpy(np.float64)[m],
            intervals[schema],
            str(p),
        )
    return out


QUOTE_SCHEMAS = ("mbp-1", "tbbo", "bbo-1s", "bbo-1m", "cbbo-1s", "cbbo-1m", "tcbbo", "cmbp-1")


def read_dbn_option_quotes(path: str | Path) -> OptionQuoteBars:
    """Top-of-book option quotes from a DBN file (OPRA ``mbp-1``, ``tbbo``, ``cbbo-1m``...) through
    the official client. The quote time is ``ts_recv`` (when it was known; for ``*bbo-1m`` the
    interval end); a side with no price is NaN. Symbols must be OCC (``AAPL  250221C00250000``).
    """
    import databento as db

    p = Path(path)
    if not p.is_file():
        raise DataFileError(p, "no such file")
    try:
        store = db.DBNStore.from_file(p)
        schema = str(store.schema)
        df = store.to_df(pretty_ts=False, map_symbols=True)
    except Exception as exc:  # the client raises several types for corrupt input
        raise DataFileError(p, f"not a readable DBN file: {exc}") from None
    if schema not in QUOTE_SCHEMAS:
        raise DataFileError(
            p, f"schema {schema!r} holds no quotes; expected one of {list(QUOTE_SCHEMAS)}", column="schema"
        )
    if df.empty:
        raise DataFileError(p, "no records")
    ts = np.asarray(df.index.to_numpy(dtype=np.int64), dtype=np.int64)
    frame = pd.DataFrame({"option_symbol": df["symbol"].astype(str).to_numpy()})
    frame["underlying"] = [s[:6].strip() for s in frame["option_symbol"]]
    occ, _und, expiry, is_call, strike = _contract_fields(frame, p)
    und = np.array([parse_occ(o).underlying for o in occ], dtype=object)

    def px(col: str) -> F64:
        v = df[col].to_numpy(dtype=np.float64)
        return np.where(np.isfinite(v) & (v > 0), v, np.nan)

    order = np.argsort(ts, kind="stable")
    return OptionQuoteBars(
        ts[order],
        occ[order],
        und[order],
        expiry[order],
        is_call[order],
        strike[order],
        px("bid_px_00")[order],
        px("ask_px_00")[order],
        df["bid_sz_00"].to_numpy(np.float64)[order],
        df["ask_sz_00"].to_numpy(np.float64)[order],
        str(p),
    )


def read_any_option_quotes(path: str | Path) -> OptionQuoteBars:
    """Option quote-bar CSV (optionally .gz) or DBN top-of-book quotes, by the file name."""
    if str(path).lower().endswith((".dbn", ".dbn.zst")):
        return read_dbn_option_quotes(path)
    return read_option_quote_bars(path)


def read_any_bars(path: str | Path) -> dict[str, BarSeries]:
    """CSV (optionally .gz) or DBN (``.dbn``/``.dbn.zst``) bars by the file name."""
    name = str(path).lower()
    if name.endswith((".dbn", ".dbn.zst")):
        return read_dbn_bars(path)
    return read_bars(path)
