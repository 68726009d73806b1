"""Fuzz targets (hypothesis, fixed seed: ``derandomize=True``) on the two places hostile bytes
enter the system (issue 18, "Tests").

1. DBN -> normalise: real DBN files from the shared data (databento's dbn test files), mutated
   byte by byte, truncated and split at random, go through the replay decoder
   (:func:`decode_chunks`) and the :class:`Normalizer`. Nothing may raise: undecodable bytes are
   quarantined, and what is normalised has real timestamps.
2. REST request decoding: arbitrary JSON bodies are parsed into every request type (protobuf's
   JSON mapping, as Envoy's transcoder does), and arbitrary bytes go through the servers' guarded
   request deserializer. Parsing may fail only with ``ParseError``, decoding only into an
   ``Undecodable`` carrying INVALID_ARGUMENT; the shared validators raise only InvalidArgument.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiots.services.common.errors import InvalidArgument, Undecodable, guarded_deserializer
from aiots.services.common.validation import require_ticker, require_time_range
from aiots.services.ingestion.normalize import Normalizer
from aiots.services.ingestion.sources.replay import decode_chunks
from aiots.v1 import analytics_pb2, cache_pb2, ingestion_pb2, signals_pb2

FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DBN_FILES = ["mbp-1", "tbbo", "ohlcv-1h", "statistics", "definition", "bbo-1s", "cmbp-1", "imbalance", "mbo"]


@pytest.fixture(scope="module")
def dbn_seeds(shared_data: Path) -> dict[str, bytes]:
    d = shared_data / "dbn" / "dbn-repo"
    seeds = {n: (d / f"test_data.{n}.dbn").read_bytes() for n in DBN_FILES if (d / f"test_data.{n}.dbn").is_file()}
    if not seeds:
        pytest.skip(f"no uncompressed DBN test files under {d}")
    return seeds


def _normalise(chunks: list[bytes]) -> tuple[int, int]:
    """(records decoded, rows normalised); raises whatever the path raises."""
    norm = Normalizer(3)
    records = rows = 0
    for recs, _bad in decode_chunks(chunks, norm, compressed=False):
        records += len(recs)
        batch = norm.records(recs)
        for table, cols in batch.columns.items():
            if "ts_event" in cols:
                ts = np.asarray(cols["ts_event"])
                assert (ts > 0).all(), f"{table}: a row without a timestamp was normalised"
            rows += len(next(iter(cols.values()))) if cols else 0
    return records, rows


def test_unmutated_seeds_decode(dbn_seeds: dict[str, bytes]) -> None:
    """The fuzz starts from files the path really decodes (a vacuous fuzz would prove nothing)."""
    total = sum(_normalise([raw])[0] for raw in dbn_seeds.values())
    assert total > 0


def test_corrupted_metadata_mapping_is_survived(dbn_seeds: dict[str, bytes]) -> None:
    """The case the fuzz found: a NUL byte in a Metadata mapping's instrument id made databento's
    InstrumentMap raise ValueError out of the replay ('failed to parse ... as an instrument_id')."""
    if "bbo-1s" not in dbn_seeds:
        pytest.skip("test_data.bbo-1s.dbn not in the shared data")
    raw = bytearray(dbn_seeds["bbo-1s"])
    raw[282] = 0
    records, _ = _normalise([bytes(raw[:353]), bytes(raw[353:])])
    assert records >= 0


@FUZZ
@given(data=st.data())
def test_dbn_normalise_never_raises(dbn_seeds: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(dbn_seeds)))
    raw = bytearray(dbn_seeds[name])
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=8)):
        raw[pos] = byte
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    cut = data.draw(st.integers(0, len(raw)))
    _normalise([bytes(raw[:cut]), bytes(raw[cut:])])


# --- REST request decoding -----------------------------------------------------------------------

REQUESTS: list[Any] = [
    analytics_pb2.GetIndicatorsRequest, analytics_pb2.GetPatternsRequest, analytics_pb2.GetOptionsAnalyticsRequest,
    analytics_pb2.GetOptionChainRequest, analytics_pb2.PriceOptionsRequest, analytics_pb2.ImpliedVolatilityRequest,
    analytics_pb2.GetVolSurfaceRequest, cache_pb2.GetStockPriceRequest, cache_pb2.SetAnalyticsRequest,
    cache_pb2.GetAnalyticsRequest, ingestion_pb2.StartCollectionRequest, ingestion_pb2.StopCollectionRequest,
    ingestion_pb2.GetBarsRequest, ingestion_pb2.GetTradesRequest, ingestion_pb2.BackfillRequest,
    signals_pb2.ListSignalsRequest, signals_pb2.SubscribeSignalsRequest,
]  # fmt: skip

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)


def _json_for(msg_type: Any) -> st.SearchStrategy[dict[str, Any]]:
    names = [f.name for f in msg_type.DESCRIPTOR.fields] + ["bogus"]
    values = st.recursive(
        _scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )
    return st.dictionaries(st.sampled_from(names), values, max_size=4)


@FUZZ
@given(data=st.data())
def test_json_bodies_parse_or_fail_cleanly(data: st.DataObject) -> None:
    msg_type = data.draw(st.sampled_from(REQUESTS))
    body = json.dumps(data.draw(_json_for(msg_type)))
    try:
        msg = json_format.Parse(body, msg_type())
    except json_format.ParseError:
        return
    decoded = guarded_deserializer(msg_type.FromString)
    assert decoded is not None
    assert decoded(msg.SerializeToString()) == msg


@FUZZ
@given(msg_type=st.sampled_from(REQUESTS), raw=st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_are_invalid_argument(msg_type: Any, raw: bytes) -> None:
    decode = guarded_deserializer(msg_type.FromString)
    assert decode is not None
    out = decode(raw)
    if isinstance(out, Undecodable):
        assert isinstance(out.error, InvalidArgument) and out.error.field
    else:
        assert isinstance(out, msg_type)


@FUZZ
@given(value=st.text(max_size=16))
def test_ticker_rule_accepts_or_names_the_field(value: str) -> None:
    try:
        t = require_ticker("symbol", value)
    except InvalidArgument as exc:
        assert exc.field == "symbol"
        return
    assert t == t.strip().upper() and 1 <= len(t) <= 10


@FUZZ
@given(seconds=st.integers(-(2**63), 2**63 - 1), nanos=st.integers(-(2**31), 2**31 - 1))
def test_time_range_accepts_or_names_the_field(seconds: int, nanos: int) -> None:
    req = ingestion_pb2.GetBarsRequest(start=Timestamp(seconds=seconds, nanos=nanos))
    try:
        start, _ = require_time_range(req)
    except InvalidArgument as exc:
        assert exc.field == "start"
        return
    assert start is not None and 0 <= start < 2**63
