"""OptionQuoteEvent bytes built column-wise parse to the message built field by field.

Oracle: protobuf's own serialiser. Each record's bytes are parsed and compared with the message
made the ordinary way (``OptionQuoteEvent(...)``), both serialised deterministically (a NaN double
keeps its bits; an explicit 0.0 parses as the unset default)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.ingestion import option_quote_wire as w
from aiots.v1 import common_pb2, events_pb2

CONTRACT = common_pb2.OptionContract(
    occ_symbol="AAPL  250117C00150000", underlying="AAPL", strike=150.0, expiry="2025-01-17",
    right=common_pb2.OPTION_RIGHT_CALL, multiplier=100, style=common_pb2.EXERCISE_STYLE_AMERICAN,
)  # fmt: skip
SYM = CONTRACT.occ_symbol

doubles = st.floats(allow_nan=True, allow_infinity=True, width=64)
#: ns timestamps: the array path's range (every ns time from 1972 to 2262), and anything an int64 holds
fast_stamps = st.integers(min_value=1 << 56, max_value=(1 << 63) - 1)
any_stamps = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
ZEROED = ("bid", "ask", "underlying_price")


def records(stamps: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[float, ...]]:
    return st.tuples(stamps, *([doubles] * len(w.TAIL_DOUBLES)))


def expected(ts: int, vals: tuple[float, ...], source: int, zeroed: tuple[str, ...] = ()) -> bytes:
    fields = dict(zip(w.TAIL_DOUBLES, vals, strict=True))
    for name in zeroed:
        if math.isnan(fields[name]):
            fields[name] = 0.0
    msg = events_pb2.OptionQuoteEvent(symbol=SYM, ts_event=ts, source=source, contract=CONTRACT, **fields)  # type: ignore[arg-type]
    return msg.SerializeToString(deterministic=True)


def parsed(raw: bytes) -> bytes:
    return events_pb2.OptionQuoteEvent.FromString(raw).SerializeToString(deterministic=True)


def check(recs: list[tuple[float, ...]], zeroed: tuple[str, ...]) -> None:
    src = events_pb2.EVENT_SOURCE_LIVE
    head = w.head(SYM, src, CONTRACT)
    ts = np.array([int(r[0]) for r in recs], dtype=np.int64)
    cols = [np.array([r[1 + j] for r in recs], dtype=np.float64) for j in range(len(w.TAIL_DOUBLES))]
    out = w.events([head] * len(recs), ts, *cols, nan_as_zero=zeroed)
    assert len(out) == len(recs)
    for raw, r in zip(out, recs, strict=True):
        assert parsed(raw) == expected(int(r[0]), tuple(r[1:]), src, zeroed)


@settings(max_examples=150, deadline=None)
@given(st.lists(records(fast_stamps), min_size=w.FAST_MIN_RECORDS, max_size=60), st.booleans())
def test_the_array_path_parses_to_the_message_built_field_by_field(recs: list[tuple[float, ...]], z: bool) -> None:
    check(recs, ZEROED if z else ())


@settings(max_examples=150, deadline=None)
@given(st.lists(records(any_stamps), min_size=1, max_size=40), st.booleans())
def test_the_record_path_parses_to_the_message_built_field_by_field(recs: list[tuple[float, ...]], z: bool) -> None:
    check(recs, ZEROED if z else ())


def test_the_two_paths_give_the_same_bytes_on_the_range_edges() -> None:
    """The 9-byte varint range's edges, one past each, 0 and -1 (an undefined time read as int64)."""
    src = events_pb2.EVENT_SOURCE_HISTORICAL
    head = w.head(SYM, src, CONTRACT)
    vals = (1.25, 1.3, 10.0, 0.0, -0.0, math.nan, 101.5)
    for ts in (1 << 56, (1 << 56) - 1, (1 << 63) - 1, 0, -1, 1_760_000_000_123_456_789):
        (raw,) = w.events([head], [ts], *([v] for v in vals))
        assert parsed(raw) == expected(ts, vals, src)
    n = w.FAST_MIN_RECORDS
    batch = np.array([(1 << 56) + i for i in range(n)], dtype=np.int64)
    cols = [np.arange(float(n + 1)) + j for j in range(len(vals))]
    fast = w.events([head] * n, batch, *(c[:n] for c in cols))
    mixed = w.events([head] * (n + 1), np.append(batch, 0), *cols)  # one record outside: record path
    assert fast == mixed[:n]


def test_every_field_of_the_message_is_written_or_named_unwritten() -> None:
    """A field added to OptionQuoteEvent fails here until the encoder writes it (or names it unwritten)."""
    names = set(events_pb2.OptionQuoteEvent.DESCRIPTOR.fields_by_name)
    covered = set(w.HEAD_FIELDS) | {"ts_event"} | set(w.TAIL_DOUBLES) | set(w.UNWRITTEN)
    assert names == covered


def test_bad_shapes_are_refused() -> None:
    head = w.head(SYM, events_pb2.EVENT_SOURCE_LIVE, CONTRACT)
    with pytest.raises(TypeError, match="doubles"):
        w.events([head], [1 << 60], [1.0])
    with pytest.raises(ValueError, match="heads"):
        w.events([head, head], [1 << 60], *([[1.0]] * len(w.TAIL_DOUBLES)))
    with pytest.raises(ValueError, match="volume: 2 values for 1 records"):
        w.events([head], [1 << 60], [1.0], [1.0], [1.0], [1.0], [1.0, 2.0], [1.0], [1.0])
    assert w.events([], [], *([[]] * len(w.TAIL_DOUBLES))) == []
