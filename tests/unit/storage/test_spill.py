"""Spill segments: a batch written while PostgreSQL is away comes back equal, in order, with its
symbol codes remapped into the reading process's table. Oracle: the batch that was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aiots.services.storage.records import SYMBOLS, Batch, SymbolTable
from aiots.services.storage.spill import SpillStore


def _batch(symbols: list[str]) -> Batch:
    b = Batch()
    codes = np.array([SYMBOLS.code(s) for s in symbols], dtype=np.int32)
    b.add(
        "trades",
        {"sym": codes, "ts_event": np.arange(len(symbols), dtype=np.int64), "price": np.linspace(1, 2, len(symbols))},
    )
    b.rows["quarantine"].append(("replay", "bad", b"\x00"))
    return b


def test_segments_round_trip_in_order_with_symbols_remapped(tmp_path: Path) -> None:
    store = SpillStore(tmp_path)
    first, second = _batch(["SPILLA", "SPILLB", "SPILLA"]), _batch(["SPILLC"])
    store.append(first)
    store.append(second)
    segs = store.segments()
    assert [p.name for p in segs] == ["000000000000.seg", "000000000001.seg"]
    other = SymbolTable()  # a fresh process: codes differ
    other.code("UNRELATED")
    back = SpillStore.load(segs[0], other)
    assert [other.symbol(int(c)) for c in back.columns["trades"]["sym"]] == ["SPILLA", "SPILLB", "SPILLA"]
    np.testing.assert_array_equal(back.columns["trades"]["price"], first.columns["trades"]["price"])
    assert back.rows["quarantine"] == [("replay", "bad", b"\x00")]
    assert SpillStore(tmp_path).append(first).name == "000000000002.seg"  # numbering resumes after a restart


def test_dead_segments_are_moved_aside(tmp_path: Path) -> None:
    store = SpillStore(tmp_path)
    p = store.append(_batch(["SPILLD"]))
    store.move_dead(p)
    assert not store.segments() and (tmp_path / "dead" / p.name).is_file()
