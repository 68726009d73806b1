"""The pass-through GetStockPrice encoding equals protobuf's own serialisation (the oracle)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.cache.service import price_response_bytes
from aiots.v1 import cache_pb2


def _oracle(sp: cache_pb2.StockPrice) -> bytes:
    return cache_pb2.GetStockPriceResponse(price=sp).SerializeToString()


def test_boundary_lengths_match_protobuf() -> None:
    for n in (0, 1, 100, 125, 126, 127, 128, 16_380, 16_381, 16_382, 16_383, 16_384, 2_100_000):
        sp = cache_pb2.StockPrice(symbol="S" * n)
        raw = sp.SerializeToString()
        assert price_response_bytes(raw) == _oracle(sp)
        assert cache_pb2.GetStockPriceResponse.FromString(price_response_bytes(raw)).price == sp


@settings(max_examples=200, deadline=None)
@given(
    symbol=st.text(max_size=300),
    last=st.floats(allow_nan=False),
    volume=st.floats(allow_nan=False),
)
def test_any_snapshot_matches_protobuf(symbol: str, last: float, volume: float) -> None:
    sp = cache_pb2.StockPrice(symbol=symbol, last=last, volume=volume)
    assert price_response_bytes(sp.SerializeToString()) == _oracle(sp)
