"""The COPY codec: PostgreSQL binary COPY payloads built straight from NumPy columns (the staging
layout, and the direct layout with symbol text and timestamptz), and the staging DDL and
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` statements the writer runs per table."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.services.storage.records import TABLES

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
    n = int(cols[TABLES[table][0][0]].shape[0])
    return _COPY_HEADER + encode_binary_rows(table, cols, 0, n) + _COPY_TRAILER


def encode_binary_rows(table: str, cols: dict[str, npt.NDArray[Any]], lo: int, hi: int) -> bytes:
    """Staging-layout rows ``lo:hi`` of :func:`encode_binary_copy` without the header and trailer
    (concatenated chunks equal the whole payload: the writer streams a batch in chunks)."""
    spec = TABLES[table]
    rec = np.empty(hi - lo, dtype=_COPY_DTYPES[table])
    rec["_n"] = len(spec)
    for name, t in spec:
        rec[f"_l_{name}"] = np.dtype(t).itemsize
        rec[name] = cols[name][lo:hi]
    return rec.tobytes()


_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds (timestamptz binary origin)
_NULLABLE = {"bid", "ask", "underlying_price"}  # NaN means NULL (as the staging path's NULLIF)


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
    """Target columns of the direct COPY payload (:func:`encode_direct_rows`), in payload order."""
    _, fixed, text = _DIRECT[table]
    return [*fixed, *(_TEXT_TARGET[c] for c in text)]


def encode_direct_rows(
    table: str, cols: dict[str, npt.NDArray[Any]], symbols: dict[int, str], lo: int, hi: int
) -> bytes:
    """Binary COPY rows ``lo:hi`` for the real table (symbol text + timestamptz included), built in
    NumPy, without the header and trailer: the writer streams a large batch in chunks between
    ``_COPY_HEADER`` and ``_COPY_TRAILER`` (concatenated chunks equal the whole payload).

    Each row is laid out padded (fixed columns, then per text column a 4-byte length and the text
    padded to the widest symbol), and one boolean compress drops the padding: a single pass over
    the bytes, no per-byte index arrays. A NaN in a nullable column (``_NULLABLE``) is a NULL: length
    -1 and its value bytes dropped by the same compress (what the staging path's NULLIF stores)."""
    dtype, fixed, text = _DIRECT[table]
    n = hi - lo
    enc: dict[str, tuple[npt.NDArray[Any], npt.NDArray[np.int64], int]] = {}
    fields = list(dtype.descr)
    for c in text:
        uniq, inv = np.unique(cols[c][lo:hi], return_inverse=True)
        texts = [symbols[int(u)].encode() for u in uniq.tolist()]
        width = max((len(e) for e in texts), default=1)
        ln = np.array([len(e) for e in texts], dtype=np.int64)[inv]
        enc[c] = (np.array(texts, dtype=f"S{width}")[inv], ln, width)
        fields += [(f"_l_{c}", ">i4"), (f"_t_{c}", f"S{width}")]
    padded = np.dtype(fields)
    rec = np.empty(n, dtype=padded)
    rec["_n"] = len(fixed) + len(text)
    for name in fixed:
        if name == "ts":
            rec["_l_ts"] = 8
            rec["ts"] = cols["ts_event"][lo:hi] // 1000 - _PG_EPOCH_US
        elif name == "side":
            rec["_l_side"] = 1
            rec["side"] = cols["side"][lo:hi].astype(np.uint8).view("S1")
        else:
            rec[f"_l_{name}"] = dtype[name].itemsize
            rec[name] = cols[name][lo:hi]
    nulls = {c: m for c in fixed if c in _NULLABLE and (m := np.isnan(cols[c][lo:hi])).any()}
    if not text and not nulls:
        return rec.tobytes()
    keep = [np.ones((n, dtype.itemsize), dtype=bool)]
    for c, m in nulls.items():
        rec[f"_l_{c}"][m] = -1
        off = dtype.fields[c][1]  # type: ignore[index]
        keep[0][m, off : off + dtype[c].itemsize] = False
    for c in text:
        strings, ln, width = enc[c]
        rec[f"_l_{c}"] = ln
        rec[f"_t_{c}"] = strings
        keep.append(np.arange(4 + width) < (4 + ln)[:, None])  # the length word and the text's own bytes
    rows: npt.NDArray[np.uint8] = rec.view(np.uint8).reshape(n, padded.itemsize)
    return bytes(rows[np.concatenate(keep, axis=1)].tobytes())


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
