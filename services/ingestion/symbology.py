"""Symbology of one DBN stream: instrument ids to symbols (``SymbolMappingMsg``, Metadata mappings
with their dates, definitions), the instrument facts per symbol, and the ``instrument_ids`` /
``instruments`` rows they produce. :class:`~aiots.services.ingestion.normalize.Normalizer` is one."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import databento_dbn as dbn
import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv
from aiots.services.ingestion.dbn_fields import NS_PER_DAY, UNDEF_MULTIPLIER, UNDEF_TS, _cstr, _px, _ts
from aiots.services.storage.records import (
    DEFAULT_OPTION_MULTIPLIER,
    KIND_OPTION,
    KIND_STOCK,
    SYMBOLS,
    Batch,
    InstrumentInfo,
    SymbolTable,
    instrument_info,
    parse_occ,
)

log = logging.getLogger(__name__)


class Symbology:
    """Instrument id -> symbol resolution and instrument facts for one session."""

    def __init__(self, dataset: str = "", symbols: SymbolTable = SYMBOLS) -> None:
        self.dataset = dataset
        self.symtab = symbols
        self.id_map: dict[int, str] = {}
        self.dated: Any = None  # databento InstrumentMap (historical metadata mappings)
        self.info: dict[str, InstrumentInfo] = {}
        self.mapping_rows: list[tuple[Any, ...]] = []

    def map_id(self, instrument_id: int, symbol: str, start_ns: int = 0, end_ns: int = 0) -> None:
        """Map an instrument id to a symbol for this session (SymbolMappingMsg)."""
        sym = symbol if parse_occ(symbol) else symbol.strip().upper()
        self.id_map[int(instrument_id)] = sym
        self._ensure_info(sym)
        if self.dataset:
            lo = start_ns if 0 < start_ns < UNDEF_TS else 0
            hi = end_ns if 0 < end_ns < UNDEF_TS else lo + NS_PER_DAY
            self.mapping_rows.append((self.dataset, int(instrument_id), sym, lo, hi))

    def load_metadata(self, metadata: Any) -> None:
        """Use a DBN Metadata's mappings (dated) for resolution."""
        from databento.common.symbology import InstrumentMap

        if not getattr(metadata, "mappings", None):
            return
        if getattr(metadata, "stype_in", None) in (dbn.SType.PARENT, dbn.SType.CONTINUOUS):
            return  # ids map to the parent (e.g. AAPL.OPT); contracts come from definitions/mappings
        if self.dated is None:
            self.dated = InstrumentMap()
        try:
            self.dated.insert_metadata(metadata)
        except (ValueError, KeyError, TypeError) as exc:  # corrupted mappings (e.g. an id that is not a number)
            log.warning("DBN metadata mappings unusable; ids resolve from the readable ones", extra={"error": str(exc)})
        if not self.dataset:
            self.dataset = str(metadata.dataset or "")
        for raw, intervals in metadata.mappings.items():
            for iv in intervals:
                try:
                    iid = int(iv["symbol"])
                except (TypeError, ValueError):
                    continue
                self.map_id(iid, raw, _date_ns(iv["start_date"]), _date_ns(iv["end_date"]))

    def _ensure_info(self, sym: str) -> InstrumentInfo:
        inf = self.info.get(sym)
        if inf is None:
            inf = instrument_info(sym)
            self.info[sym] = inf
        return inf

    def _resolve(self, ids: npt.NDArray[Any], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        """Symbol codes for (instrument_id, ts_event); -1 where unknown."""
        out = np.full(ids.shape[0], -1, dtype=np.int32)
        if self.dated is not None and ts.shape[0]:
            days = ts // NS_PER_DAY
            key = ids.astype(np.int64) * 100_000 + days
            uk, inv = np.unique(key, return_inverse=True)
            codes = np.empty(uk.shape[0], dtype=np.int32)
            for i, k in enumerate(uk.tolist()):
                iid, day = divmod(k, 100_000)
                sym = self.dated.resolve(iid, dt.date(1970, 1, 1) + dt.timedelta(days=day))
                sym = sym or self.id_map.get(iid)
                codes[i] = self.symtab.code(self._canon(sym)) if sym else -1
            out = codes[inv]
        elif ids.shape[0]:
            uk, inv = np.unique(ids, return_inverse=True)
            codes = np.array(
                [self.symtab.code(self.id_map[k]) if k in self.id_map else -1 for k in uk.tolist()], dtype=np.int32
            )
            out = codes[inv]
        return out

    def _canon(self, sym: str) -> str:
        s = sym if parse_occ(sym) else sym.strip().upper()
        self._ensure_info(s)
        return s

    def _definitions(self, a: npt.NDArray[Any], b: Batch) -> None:
        raws = a["raw_symbol"].tolist()
        classes = a["instrument_class"].tolist()
        unds = a["underlying"].tolist()
        iids = a["instrument_id"].tolist()
        ts_e = _ts(a["ts_event"]).tolist()
        exps = _ts(a["expiration"]).tolist()
        strikes = _px(a["strike_price"]).tolist()
        mults = a["contract_multiplier"].tolist()
        for i, raw_b in enumerate(raws):
            raw = _cstr(raw_b)
            if not raw:
                continue
            sym = self._canon(raw)
            iid = int(iids[i])
            self.id_map.setdefault(iid, sym)
            if self.dataset:
                day0 = (ts_e[i] // NS_PER_DAY) * NS_PER_DAY
                b.rows["instrument_ids"].append((self.dataset, iid, sym, day0, day0 + NS_PER_DAY))
            cls = _cstr(classes[i])
            und = _cstr(unds[i]) or sym
            if cls in ("C", "P"):
                occ = parse_occ(sym)  # the OCC date is authoritative; DBN expiration is 00:00 UTC of it
                exp_ns = exps[i]
                expiry = occ.expiry if occ else (cv.ns_to_datetime(exp_ns).date() if exp_ns else None)
                strike = strikes[i]
                mult = int(mults[i])
                inf = InstrumentInfo(
                    symbol=sym,
                    kind=KIND_OPTION,
                    underlying=und.strip().upper(),
                    strike=None if strike != strike else strike,
                    expiry=expiry,
                    right=cls,
                    multiplier=DEFAULT_OPTION_MULTIPLIER if mult in (0, UNDEF_MULTIPLIER) else mult,
                )
            else:
                inf = InstrumentInfo(symbol=sym, kind=KIND_STOCK, underlying=sym)
            self.info[sym] = inf
            b.rows["instruments"].append(_instrument_row(inf, self.dataset))

    def instrument_rows(self) -> list[tuple[Any, ...]]:
        """Rows for every symbol seen so far (instruments table upsert)."""
        return [_instrument_row(i, self.dataset) for i in self.info.values()]


def _instrument_row(inf: InstrumentInfo, dataset: str) -> tuple[Any, ...]:
    return (inf.symbol, inf.kind, inf.underlying, inf.strike, inf.expiry, inf.right, inf.multiplier, dataset)


def _date_ns(d: Any) -> int:
    """00:00 UTC of a date (Databento symbology intervals are UTC dates)."""
    day = cv.as_date(d)
    return cv.datetime_to_ns(dt.datetime(day.year, day.month, day.day, tzinfo=cv.UTC))
