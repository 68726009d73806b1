"""Instrument id -> symbol for one session: tickers upper-cased, OCC symbols kept whole, unknown ids
-1, and the instrument_ids rows a mapping produces (an open-ended interval covers one day).
Oracle: hand-derived cases and Databento's UNDEF_TIMESTAMP sentinel."""

from __future__ import annotations

import databento_dbn as dbn
import numpy as np

from aiots.core.conventions import NS_PER_DAY
from aiots.services.ingestion.symbology import Symbology
from aiots.services.storage.records import KIND_OPTION, KIND_STOCK, SymbolTable


def test_ids_resolve_to_canonical_symbols() -> None:
    table = SymbolTable()
    s = Symbology("XNAS.ITCH", table)
    s.map_id(7, " aapl ", 1_000, dbn.UNDEF_TIMESTAMP)
    s.map_id(9, "AAPL  250117C00150000")
    codes = s._resolve(np.array([7, 9, 8, 7], dtype=np.uint32), np.zeros(4, dtype=np.int64))
    assert [table.symbol(int(c)) if c >= 0 else None for c in codes] == ["AAPL", "AAPL  250117C00150000", None, "AAPL"]
    assert s.info["AAPL"].kind == KIND_STOCK
    opt = s.info["AAPL  250117C00150000"]
    assert (opt.kind, opt.underlying, opt.strike, opt.right) == (KIND_OPTION, "AAPL", 150.0, "C")
    assert s.mapping_rows[0] == ("XNAS.ITCH", 7, "AAPL", 1_000, 1_000 + NS_PER_DAY)
    assert {r[0] for r in s.instrument_rows()} == {"AAPL", "AAPL  250117C00150000"}
