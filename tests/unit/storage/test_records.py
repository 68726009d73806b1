"""Record batches and symbols: OCC symbols round-trip through the OCC format (the OCC symbology:
root padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits), other names are stocks, batches
concatenate per table and remember their symbols, codes are stable per table."""

from __future__ import annotations

import datetime as dt

import numpy as np

from aiots.services.storage.records import (
    KIND_OPTION,
    KIND_STOCK,
    SYMBOLS,
    Batch,
    SymbolTable,
    instrument_info,
    merge,
    occ_symbol,
)


def test_occ_symbols_and_stocks() -> None:
    s = occ_symbol("AAPL", dt.date(2025, 2, 21), "C", 250.0)
    assert s == "AAPL  250221C00250000"  # hand-written from the OCC format
    inf = instrument_info(s)
    assert (inf.kind, inf.underlying, inf.expiry, inf.right, inf.strike, inf.multiplier) == (
        KIND_OPTION, "AAPL", dt.date(2025, 2, 21), "C", 250.0, 100,
    )  # fmt: skip
    assert instrument_info("BRK.B").kind == KIND_STOCK and instrument_info("aapl  250221c00250000").kind == KIND_STOCK


def test_symbol_codes_are_stable() -> None:
    t = SymbolTable()
    a, b = t.code("X1"), t.code("X2")
    assert (t.code("X1"), t.symbol(b)) == (a, "X2")
    assert t.symbols_of(np.array([b, a, b])) == {a: "X1", b: "X2"}


def test_batches_concatenate_per_table_and_keep_their_symbols() -> None:
    c1, c2 = SYMBOLS.code("RECA"), SYMBOLS.code("RECB")
    b1, b2 = Batch(), Batch()
    b1.add("trades", {"sym": np.array([c1], dtype=np.int32), "price": np.array([1.0])})
    b2.add("trades", {"sym": np.array([c2, c1], dtype=np.int32), "price": np.array([2.0, 3.0])})
    b2.rows["quarantine"].append(("x",))
    b2.add("quotes", {"sym": np.array([], dtype=np.int32), "bid": np.array([])})  # empty: not added
    m = merge([b1, b2])
    assert m.columns["trades"]["price"].tolist() == [1.0, 2.0, 3.0] and "quotes" not in m.columns
    assert m.symbols == {c1: "RECA", c2: "RECB"} and m.count() == 3 and m.total() == 4 and not m.empty()
