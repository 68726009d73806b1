"""The one-pass ``records.merge``, and the writer's ``merge_stepwise`` (the same in steps of a few
batches), equal ``Batch.extend`` applied batch after batch (the per-batch ``add`` they replace)
for any mix of tables, empty column sets and small-table rows; the staging COPY payload streamed in
chunks (``encode_binary_rows``) equals a row-by-row ``struct`` encoding of PostgreSQL's binary COPY
format (int16 field count, then per field an int32 length and the big-endian value), and so do the
direct layout's rows, where a NaN in a nullable column is a NULL (length -1)."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core.conventions import NS_PER_DAY
from aiots.services.storage.copy_codec import (
    _COPY_HEADER,
    _COPY_TRAILER,
    _DIRECT,
    _NULLABLE,
    encode_binary_copy,
    encode_binary_rows,
    encode_direct_rows,
)
from aiots.services.storage.records import SYMBOLS, TABLES, Batch, merge
from aiots.services.storage.writer import _days, merge_stepwise

CODES = [SYMBOLS.code(s) for s in ("WCA", "WCB", "AAPL  250221C00250000", "WCC")]


def _cols(table: str, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in TABLES[table]:
        if name in ("sym", "und"):
            out[name] = rng.choice(CODES, n).astype(t)
        elif t.startswith("f"):
            out[name] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(100, 5, n)).astype(t)
        else:
            out[name] = rng.integers(0, 1000, n).astype(t)
    return out


_part = st.tuples(
    st.sampled_from(["trades", "quotes", "option_quotes", "bars_1m"]),
    st.integers(0, 40),  # rows (0: an empty column set, skipped by both)
    st.integers(0, 3),  # small-table rows
    st.integers(0, 2**31),
)


def _batch(parts: list[tuple[str, int, int, int]]) -> Batch:
    b = Batch()
    for table, n, nrows, seed in parts:
        cols = _cols(table, n, seed)
        if n:
            b.add(table, cols)
        else:
            b.columns[table] = cols  # an empty column set as a normaliser may leave it
        b.rows["data_quality_events"].extend(("t", "k", None, None, str(i)) for i in range(nrows))
    return b


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_part, min_size=0, max_size=3), min_size=1, max_size=9), st.sampled_from([0, 2, 3]))
def test_merge_equals_extending_batch_after_batch(spec: list[list[tuple[str, int, int, int]]], fan_in: int) -> None:
    """fan_in 0: ``merge`` in one pass; else ``merge_stepwise`` with that fan-in."""
    batches = [_batch(p) for p in spec]
    got = asyncio.run(merge_stepwise(batches, fan_in)) if fan_in else merge(batches)
    want = Batch()
    for p in spec:
        want.extend(_batch(p))
    assert got.columns.keys() == want.columns.keys()
    for t, cols in want.columns.items():
        assert got.columns[t].keys() == cols.keys()
        for k, a in cols.items():
            assert got.columns[t][k].dtype == a.dtype
            np.testing.assert_array_equal(got.columns[t][k], a)
    assert dict(got.rows) == dict(want.rows)
    assert got.symbols == want.symbols


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(TABLES)),
    st.integers(0, 300),
    st.integers(1, 128),
    st.integers(0, 2**31),
)
def test_staging_rows_in_chunks_equal_the_whole_payload(table: str, n: int, chunk: int, seed: int) -> None:
    cols = _cols(table, n, seed)
    spec = TABLES[table]
    fmt = {"i2": "h", "i4": "i", "i8": "q", "f8": "d"}
    oracle = b"".join(
        struct.pack(">h", len(spec))
        + b"".join(struct.pack(">i", np.dtype(t).itemsize) + struct.pack(">" + fmt[t], cols[c][i]) for c, t in spec)
        for i in range(n)
    )
    chunks = [encode_binary_rows(table, cols, lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    assert b"".join(chunks) == oracle
    assert encode_binary_copy(table, cols) == _COPY_HEADER + oracle + _COPY_TRAILER


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["trades", "quotes", "option_quotes", "bars_1m"]), st.integers(0, 120), st.integers(0, 2**31))
def test_direct_rows_with_nulls_equal_a_struct_oracle(table: str, n: int, seed: int) -> None:
    """Direct-layout rows: a NaN in a nullable column is a NULL (length -1, no value bytes)."""
    cols = _cols(table, n, seed)
    if "side" in cols:
        cols["side"] = np.random.default_rng(seed).choice([ord("A"), ord("B"), ord("N")], n).astype(cols["side"].dtype)
    symbols = {c: SYMBOLS.symbol(c) for c in CODES}
    _, fixed, text = _DIRECT[table]
    kinds = dict(TABLES[table])
    fmt = {"i2": "h", "i4": "i", "i8": "q", "f8": "d"}

    def field(c: str, i: int) -> bytes:
        if c == "ts":
            return struct.pack(">iq", 8, int(cols["ts_event"][i]) // 1000 - 946_684_800_000_000)
        if c == "side":
            return struct.pack(">iB", 1, int(cols["side"][i]))
        v = cols[c][i]
        if c in _NULLABLE and np.isnan(v):
            return struct.pack(">i", -1)
        return struct.pack(">i", np.dtype(kinds[c]).itemsize) + struct.pack(">" + fmt[kinds[c]], v)

    oracle = b"".join(
        struct.pack(">h", len(fixed) + len(text))
        + b"".join(field(c, i) for c in fixed)
        + b"".join(struct.pack(">i", len(t := symbols[int(cols[c][i])].encode())) + t for c in text)
        for i in range(n)
    )
    chunks = [encode_direct_rows(table, cols, symbols, lo, min(n, lo + 50)) for lo in range(0, n, 50)]
    assert b"".join(chunks) == oracle


@given(st.lists(st.integers(-(2**62), 2**62), max_size=30), st.booleans())
def test_days_equal_the_distinct_days(ts: list[int], one_day: bool) -> None:
    """``_days`` (min/max shortcut) against Python's floor division per timestamp."""
    a = np.array(ts, dtype=np.int64)
    if one_day:  # the live case: every timestamp on one day
        a = a % NS_PER_DAY + 19_000 * NS_PER_DAY
    assert _days(a) == {x // NS_PER_DAY for x in a.tolist()}
