"""The one place where cache domain objects meet protobuf (``aiots.v1.cache_pb2``)."""

from __future__ import annotations

from google.protobuf import struct_pb2

from aiots.core.conventions import ns_to_pb as ts_from_ns
from aiots.core.conventions import pb_to_ns as ns_from_ts
from aiots.services.cache.prices import PriceSnapshot
from aiots.v1 import cache_pb2

__all__ = [
    "ns_from_ts", "price_from_bytes", "price_from_proto", "price_to_proto", "ts_from_ns", "value_from_bytes",
    "value_to_bytes",
]  # fmt: skip


def price_to_proto(s: PriceSnapshot) -> cache_pb2.StockPrice:
    return cache_pb2.StockPrice(
        symbol=s.symbol,
        last=s.last,
        bid=s.bid,
        ask=s.ask,
        open=s.open,
        high=s.high,
        low=s.low,
        prev_close=s.prev_close,
        change=s.change,
        change_pct=s.change_pct,
        volume=s.volume,
        as_of=ts_from_ns(s.ts_ns),
    )


def price_from_proto(m: cache_pb2.StockPrice) -> PriceSnapshot:
    return PriceSnapshot(
        symbol=m.symbol,
        last=m.last,
        bid=m.bid,
        ask=m.ask,
        open=m.open,
        high=m.high,
        low=m.low,
        prev_close=m.prev_close,
        volume=m.volume,
        ts_ns=ns_from_ts(m.as_of),
    )


def price_from_bytes(raw: bytes) -> PriceSnapshot:
    return price_from_proto(cache_pb2.StockPrice.FromString(raw))


def value_to_bytes(v: struct_pb2.Value) -> bytes:
    """A JSON value as protobuf bytes (typed, compact; not JSON text)."""
    return bytes(v.SerializeToString())


def value_from_bytes(raw: bytes) -> struct_pb2.Value:
    return struct_pb2.Value.FromString(raw)
