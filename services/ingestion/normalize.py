"""DBN records -> normalised columnar batches (the one decode path for every source).

Input: DBN record objects (``databento_dbn`` classes, from Live, DBNDecoder or the simulator) or
structured arrays (``DBNStore.to_ndarray``). Objects are grouped by record type and turned into
the same structured arrays (``bytes(record)`` is the DBN wire layout), so all normalisation is
vectorised NumPy over arrays:

- prices: int64 fixed point x 1e-9 -> float64 dollars; ``UNDEF_PRICE`` -> NaN (NULL in storage);
- times: uint64 ns UTC -> int64 ns; ``UNDEF_TIMESTAMP`` -> 0;
- instrument_id -> symbol through the session's mappings (``SymbolMappingMsg``, Metadata
  mappings with their dates, definitions); tickers upper-case, options the 21-char OCC symbol;
- data quality: crossed quotes (bid > ask), zero-size quotes, out-of-order ts_event per symbol and
  unmapped instrument ids are counted exactly (per record; a quote both crossed and zero-size
  counts once in each kind) in :class:`Counters` (GetCollectionStatus.data_quality_events sums
  them over the running jobs) and stored as ``data_quality_events`` rows, ONE ROW PER KIND PER
  BATCH: ``symbol``/``ts_event`` are the first offending record's, ``detail`` starts ``n=<count>``
  (summing n over the rows gives the exact count).

Field decoding is :mod:`~aiots.services.ingestion.dbn_fields`; id -> symbol resolution and instrument
facts are :class:`~aiots.services.ingestion.symbology.Symbology`, which a :class:`Normalizer` is.

Output: a :class:`Batch` of per-table column arrays (symbols as int32 codes of a process-wide
:class:`SymbolTable`) plus small row lists (instruments, statistics, data-quality events).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import databento_dbn as dbn
import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv
from aiots.services.ingestion.dbn_fields import (  # re-exported: the field decoding lives there
    NS_PER_DAY,
    PRICE_DIVISOR,
    PRICE_SCALE,
    UNDEF_MULTIPLIER,
    UNDEF_PRICE,
    UNDEF_TS,
    _px,
    _side,
    _ts,
    _ts_scalar,
)
from aiots.services.ingestion.symbology import Symbology
from aiots.services.storage.records import (  # re-exported: the shared record-batch types live in storage
    DEFAULT_OPTION_MULTIPLIER,
    KIND_OPTION,
    KIND_STOCK,
    SYMBOLS,
    TABLES,
    Batch,
    Columns,
    InstrumentInfo,
    SymbolTable,
    instrument_info,
    merge,
    occ_symbol,
    parse_occ,
)

__all__ = [
    "DEFAULT_OPTION_MULTIPLIER",
    "KIND_OPTION",
    "KIND_STOCK",
    "NS_PER_DAY",
    "PRICE_DIVISOR",
    "PRICE_SCALE",
    "SYMBOLS",
    "TABLES",
    "UNDEF_MULTIPLIER",
    "UNDEF_PRICE",
    "UNDEF_TS",
    "Batch",
    "Columns",
    "InstrumentInfo",
    "Normalizer",
    "SymbolTable",
    "Symbology",
    "instrument_info",
    "merge",
    "occ_symbol",
    "parse_occ",
]  # fmt: skip

# aiots.v1.EventSource values
SOURCE_LIVE, SOURCE_HISTORICAL, SOURCE_REPLAY, SOURCE_SIMULATOR = 1, 2, 3, 4

# DBN record types used here
RTYPE_TRADE = 0
RTYPE_MBP1 = 1
RTYPE_OHLCV = {32: "bars_1s", 33: "bars_1m", 35: "bars_1d"}
RTYPE_OHLCV_OTHER = (34, 36)  # 1h and end-of-day bars: not stored (rolled up from 1m instead)
RTYPE_QUOTES_ONLY = (177, 192, 193, 194, 195, 196)  # cmbp-1, cbbo-1s/1m, tcbbo, bbo-1s/1m
RTYPE_DEFINITION = 19
RTYPE_STATISTICS = 24
RTYPE_ERROR = 21
RTYPE_SYSTEM = 23
RTYPE_MAPPING = 22


@dataclass
class Counters:
    """Running counts for status reporting."""

    records: int = 0
    heartbeats: int = 0
    unmapped: int = 0
    crossed: int = 0
    zero_size: int = 0
    out_of_order: int = 0
    undefined_ts: int = 0
    errors: int = 0
    per_stream: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (symbol, schema) -> [n, last]

    @property
    def data_quality(self) -> int:
        return self.unmapped + self.crossed + self.zero_size + self.out_of_order + self.undefined_ts


SCHEMA_OF_RTYPE = {
    0: "trades",
    1: "mbp-1",
    177: "cmbp-1",
    192: "cbbo-1s",
    193: "cbbo-1m",
    194: "tcbbo",
    195: "bbo-1s",
    196: "bbo-1m",
    32: "ohlcv-1s",
    33: "ohlcv-1m",
    34: "ohlcv-1h",
    35: "ohlcv-1d",
    19: "definition",
    24: "statistics",
}


class Normalizer(Symbology):
    """Stateful normaliser for one stream (one session's id mappings and quality state)."""

    def __init__(self, source: int, dataset: str = "", symbols: SymbolTable = SYMBOLS) -> None:
        super().__init__(dataset, symbols)
        self.source = source
        self.last_ts: dict[tuple[str, int], int] = {}  # (table, code) -> last ts_event
        self.last_price: dict[str, float] = {}  # stock -> last trade/mid (for option quotes)
        self.counters = Counters()

    # --- entry points ----------------------------------------------------------------------
    def records(self, recs: Iterable[Any]) -> Batch:
        """Normalise DBN record objects (any mix of record types), in order."""
        batch = Batch()
        groups: dict[tuple[type, int], list[bytes]] = {}
        order: list[tuple[type, int]] = []

        def flush() -> None:
            for key in order:
                cls, rtype = key
                data = b"".join(groups[key])
                arr = np.frombuffer(data, dtype=np.dtype(cls._dtypes))  # type: ignore[attr-defined]
                batch.extend(self.array(rtype, arr))
            groups.clear()
            order.clear()

        for r in recs:
            rt = int(r.rtype)
            if isinstance(r, dbn.SymbolMappingMsg):
                flush()  # mappings apply to the records after them
                self.map_id(r.instrument_id, r.stype_out_symbol, int(r.start_ts), int(r.end_ts))
                continue
            if isinstance(r, dbn.SystemMsg):
                self.counters.heartbeats += 1
                continue
            if isinstance(r, dbn.ErrorMsg):
                self.counters.errors += 1
                batch.rows["data_quality_events"].append(
                    (self._src(), "gateway_error", None, _ts_scalar(r.ts_event), str(r.err))
                )
                continue
            key = (type(r), rt)
            g = groups.get(key)
            if g is None:
                groups[key] = g = []
                order.append(key)
            g.append(bytes(r))
        flush()
        return batch

    def _src(self) -> str:
        return {1: "live", 2: "historical", 3: "replay", 4: "simulator"}.get(self.source, "unknown")

    def array(self, rtype: int, a: npt.NDArray[Any]) -> Batch:
        """Normalise a structured array of one record type (``to_ndarray`` layout)."""
        batch = Batch()
        n = int(a.shape[0])
        if n == 0:
            return batch
        self.counters.records += n
        if self.mapping_rows:
            batch.rows["instrument_ids"].extend(self.mapping_rows)
            self.mapping_rows = []
        if rtype == RTYPE_DEFINITION:
            self._definitions(a, batch)
            return batch
        ts = _ts(a["ts_event"])
        if "ts_recv" in (a.dtype.names or ()):
            ts = np.where(ts == 0, _ts(a["ts_recv"]), ts)  # undefined event time: fall back to receive time
        undef = ts == 0
        if undef.any():
            k = int(undef.sum())
            self.counters.undefined_ts += k
            batch.rows["data_quality_events"].append((self._src(), "undefined_timestamp", None, None, f"n={k}"))
            a, ts = a[~undef], ts[~undef]
            if a.shape[0] == 0:
                return batch
        codes = self._resolve(a["instrument_id"], ts)
        bad = codes < 0
        if bad.any():
            self.counters.unmapped += int(bad.sum())
            ids = np.unique(a["instrument_id"][bad]).tolist()
            batch.rows["data_quality_events"].append(
                (self._src(), "unmapped_instrument", None, int(ts[bad][0]), f"n={int(bad.sum())} ids={ids[:10]}")
            )
            keep = ~bad
            a, ts, codes = a[keep], ts[keep], codes[keep]
            if a.shape[0] == 0:
                return batch
        if rtype == RTYPE_TRADE:
            self._trades(a, ts, codes, batch)
        elif rtype == RTYPE_MBP1 or rtype in RTYPE_QUOTES_ONLY:
            if "action" in (a.dtype.names or ()):
                is_trade = a["action"] == b"T"
                if is_trade.any():
                    self._trades(a[is_trade], ts[is_trade], codes[is_trade], batch)
            self._quotes(a, ts, codes, batch)
        elif rtype in RTYPE_OHLCV:
            self._bars(RTYPE_OHLCV[rtype], a, ts, codes, batch)
        elif rtype == RTYPE_STATISTICS:
            self._stats(a, ts, codes, batch)
        self._count_streams(rtype, codes, ts)
        return batch

    # --- per record type -------------------------------------------------------------------
    def _count_streams(self, rtype: int, codes: npt.NDArray[np.int32], ts: npt.NDArray[np.int64]) -> None:
        schema = SCHEMA_OF_RTYPE.get(rtype, str(rtype))
        uc, cnt = np.unique(codes, return_counts=True)
        last = ts[::-1][np.unique(codes[::-1], return_index=True)[1]]
        for c, k, t in zip(uc.tolist(), cnt.tolist(), last.tolist(), strict=True):
            sym = self.symtab.symbol(c)
            inf = self.info.get(sym) or instrument_info(sym)
            # options are reported per underlying (a chain is thousands of contracts)
            key = (inf.underlying, f"opra:{schema}") if inf.kind == KIND_OPTION else (sym, schema)
            st = self.counters.per_stream.setdefault(key, [0, 0])
            st[0] += k
            st[1] = max(st[1], t)

    def _order_check(self, table: str, codes: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], batch: Batch) -> None:
        """Count ts_event going backwards per symbol (vs the previous record of that symbol)."""
        order = np.argsort(codes, kind="stable")
        c, t = codes[order], ts[order]
        same = c[1:] == c[:-1]
        back = np.zeros(c.shape[0], dtype=bool)
        back[1:] = same & (t[1:] < t[:-1])
        first = np.ones(c.shape[0], dtype=bool)
        first[1:] = ~same
        for i in np.flatnonzero(first).tolist():
            prev = self.last_ts.get((table, int(c[i])))
            if prev is not None and t[i] < prev:
                back[i] = True
        last_idx = np.flatnonzero(np.append(~same, True))
        for i in last_idx.tolist():
            k = (table, int(c[i]))
            self.last_ts[k] = max(self.last_ts.get(k, 0), int(t[i]))
        nb = int(back.sum())
        if nb:
            self.counters.out_of_order += nb
            syms = sorted({self.symtab.symbol(int(x)) for x in c[back][:20].tolist()})
            batch.rows["data_quality_events"].append(
                (self._src(), "out_of_order", syms[0], int(t[back][0]), f"{table}: n={nb} symbols={syms}")
            )

    def _trades(self, a: npt.NDArray[Any], ts: npt.NDArray[np.int64], codes: npt.NDArray[np.int32], b: Batch) -> None:
        n = a.shape[0]
        price = _px(a["price"])
        self._order_check("trades", codes, ts, b)
        b.add(
            "trades",
            {
                "sym": codes,
                "ts_event": ts,
                "price": price,
                "size": a["size"].astype(np.float64),
                "side": _side(a["side"]),
                "publisher_id": a["publisher_id"].astype(np.int32),
                "sequence": a["sequence"].astype(np.int64)
                if "sequence" in (a.dtype.names or ())
                else np.zeros(n, np.int64),
                "ts_recv": _ts(a["ts_recv"]),
                "source": np.full(n, self.source, np.int16),
            },
        )
        self._remember_prices(codes, price)

    def _remember_prices(self, codes: npt.NDArray[np.int32], px: npt.NDArray[np.float64]) -> None:
        ok = ~np.isnan(px)
        if not ok.any():
            return
        c, p = codes[ok], px[ok]
        uc, idx = np.unique(c[::-1], return_index=True)
        for code, price in zip(uc.tolist(), p[::-1][idx].tolist(), strict=True):
            sym = self.symtab.symbol(code)
            if self.info.get(sym, instrument_info(sym)).kind == KIND_STOCK:
                self.last_price[sym] = price

    def _quotes(self, a: npt.NDArray[Any], ts: npt.NDArray[np.int64], codes: npt.NDArray[np.int32], b: Batch) -> None:
        n = a.shape[0]
        bid, ask = _px(a["bid_px_00"]), _px(a["ask_px_00"])
        bsz, asz = a["bid_sz_00"].astype(np.float64), a["ask_sz_00"].astype(np.float64)
        seq = a["sequence"].astype(np.int64) if "sequence" in (a.dtype.names or ()) else np.zeros(n, np.int64)
        both = ~np.isnan(bid) & ~np.isnan(ask)
        crossed = both & (bid > ask)
        zero = (~np.isnan(bid) & (bsz == 0)) | (~np.isnan(ask) & (asz == 0))
        for kind, mask in (("crossed_quote", crossed), ("zero_size_quote", zero)):
            k = int(mask.sum())
            if k:
                if kind == "crossed_quote":
                    self.counters.crossed += k
                else:
                    self.counters.zero_size += k
                syms = sorted({self.symtab.symbol(int(x)) for x in codes[mask][:20].tolist()})
                b.rows["data_quality_events"].append(
                    (self._src(), kind, syms[0], int(ts[mask][0]), f"n={k} symbols={syms}")
                )
        # instrument facts once per distinct contract, not per record (a batch re-quotes few contracts)
        uc, inv = np.unique(codes, return_inverse=True)
        infos = [self.info[self.symtab.symbol(c)] for c in uc.tolist()]
        opt_u = np.array([inf.kind == KIND_OPTION for inf in infos], dtype=np.bool_)
        is_opt = opt_u[inv]
        if (~is_opt).any():
            m = ~is_opt
            self._order_check("quotes", codes[m], ts[m], b)
            b.add(
                "quotes",
                {
                    "sym": codes[m],
                    "ts_event": ts[m],
                    "bid": bid[m],
                    "ask": ask[m],
                    "bid_size": bsz[m],
                    "ask_size": asz[m],
                    "publisher_id": a["publisher_id"][m].astype(np.int32),
                    "sequence": seq[m],
                    "source": np.full(int(m.sum()), self.source, np.int16),
                },
            )
            mid = np.where(both[m] & ~crossed[m], (bid[m] + ask[m]) / 2, np.nan)
            self._remember_prices(codes[m], mid)
        if is_opt.any():
            m = is_opt
            oc = codes[m]
            und_u = [inf.underlying for inf in infos]  # read where the contract is an option only
            und = np.array([self.symtab.code(u) if o else -1 for u, o in zip(und_u, opt_u.tolist(), strict=True)])
            upx = np.array([self.last_price.get(u, np.nan) for u in und_u], dtype=np.float64)
            und, upx = und.astype(np.int32)[inv[m]], upx[inv[m]]
            self._order_check("option_quotes", oc, ts[m], b)
            b.add(
                "option_quotes",
                {
                    "sym": oc,
                    "und": und,
                    "ts_event": ts[m],
                    "bid": bid[m],
                    "ask": ask[m],
                    "bid_size": bsz[m],
                    "ask_size": asz[m],
                    "underlying_price": upx,
                    "publisher_id": a["publisher_id"][m].astype(np.int32),
                    "sequence": seq[m],
                    "source": np.full(int(m.sum()), self.source, np.int16),
                },
            )

    def _bars(
        self, table: str, a: npt.NDArray[Any], ts: npt.NDArray[np.int64], codes: npt.NDArray[np.int32], b: Batch
    ) -> None:
        n = a.shape[0]
        b.add(
            table,
            {
                "sym": codes,
                "ts_event": ts,
                "open": _px(a["open"]),
                "high": _px(a["high"]),
                "low": _px(a["low"]),
                "close": _px(a["close"]),
                "volume": a["volume"].astype(np.float64),
                "vwap": np.zeros(n, np.float64),
                "trade_count": np.zeros(n, np.int64),
                "source": np.full(n, self.source, np.int16),
            },
        )

    def _stats(self, a: npt.NDArray[Any], ts: npt.NDArray[np.int64], codes: npt.NDArray[np.int32], b: Batch) -> None:
        oi, close, vol = (
            int(dbn.StatType.OPEN_INTEREST),
            int(dbn.StatType.CLOSE_PRICE),
            int(dbn.StatType.CLEARED_VOLUME),
        )
        ts_ref = _ts(a["ts_ref"])
        for i in range(a.shape[0]):
            st = int(a["stat_type"][i])
            if st not in (oi, close, vol):
                continue
            sym = self.symtab.symbol(int(codes[i]))
            inf = self.info.get(sym) or instrument_info(sym)
            if inf.kind != KIND_OPTION:
                continue
            t = int(ts_ref[i]) or int(ts[i])
            as_of = _session_date(t)
            price = float(_px(a["price"][i : i + 1])[0])
            qty = float(a["quantity"][i])
            b.rows["option_stats"].append(
                (
                    sym,
                    inf.underlying,
                    as_of,
                    qty if st == oi else None,
                    price if st == close else None,
                    qty if st == vol else None,
                    int(ts[i]),
                )
            )


_session_date = cv.ny_date  # the New York date of an instant (open interest, statistics)
