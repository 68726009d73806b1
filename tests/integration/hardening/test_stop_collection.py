"""A malformed StopCollection never stops everything (issue 18, item 5).

Stopping every job needs an explicit ``all: true``; an empty request (what a body of unknown
fields, ``{"bogus": 1}``, transcodes to) and blank symbols (``[null]``/``[""]``) are refused
with INVALID_ARGUMENT, and the running job keeps running (the oracle: GetCollectionStatus).
"""

from __future__ import annotations

import grpc
import pytest

from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.hardening.conftest import Stack


async def test_stop_needs_all_or_symbols(stack: Stack) -> None:
    stub = ingestion_pb2_grpc.IngestionServiceStub(stack.channels["ingestion"])
    started = await stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["AAPL"], schemas=["trades"]))
    assert started.started
    bad = [
        (ingestion_pb2.StopCollectionRequest(), "symbols"),
        (ingestion_pb2.StopCollectionRequest(symbols=[""]), "symbols[0]"),
        (ingestion_pb2.StopCollectionRequest(symbols=["AAPL", " "]), "symbols[1]"),
        (ingestion_pb2.StopCollectionRequest(symbols=["AAPL"], all=True), "all"),
    ]
    for req, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await stub.StopCollection(req)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (ei.value.details() or "").startswith(f"{field}: "), ei.value.details()
        st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
        assert st.running, f"{req} stopped collection"
    stop = await stub.StopCollection(ingestion_pb2.StopCollectionRequest(all=True))
    assert list(stop.job_ids) == [started.job_id]
    st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
    assert not st.running


async def test_blank_symbols_never_mean_all(stack: Stack) -> None:
    """An empty list means every configured symbol; a list of blanks is a mistake, not "all"."""
    stub = ingestion_pb2_grpc.IngestionServiceStub(stack.channels["ingestion"])
    calls = [
        (stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=[" "])), "symbols[0]"),
        (stub.ListInstruments(ingestion_pb2.ListInstrumentsRequest(underlying=" ")), "underlying"),
    ]
    for call, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await call
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (ei.value.details() or "").startswith(f"{field}: "), ei.value.details()
    st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest())
    assert not st.running
