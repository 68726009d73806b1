"""Protobuf wire-format pieces for responses built as bytes (the one varint encoder).

Used by the pre-encoded RPCs (:func:`aiots.services.common.server.pre_encoded`): a response made of
bytes that already exist (a cached ``StockPrice``, column-wise encoded rows) is those bytes behind a
field header, so the server serialises nothing twice.
"""

from __future__ import annotations

WIRE_VARINT = 0
WIRE_I64 = 1
WIRE_LEN = 2


def varint(v: int) -> bytes:
    """Base-128 varint of a non-negative int (protobuf's encoding of lengths and unsigned ints)."""
    if v < 0:
        raise ValueError(f"varint needs a non-negative int, got {v}")
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field_key(number: int, wire_type: int) -> bytes:
    """The key of field ``number`` with ``wire_type`` (a varint; one byte for numbers below 16)."""
    return varint((number << 3) | wire_type)


def len_field(number: int, body: bytes) -> bytes:
    """A length-delimited field (submessage, string, bytes, packed): key, varint length, ``body``."""
    return field_key(number, WIRE_LEN) + varint(len(body)) + body
