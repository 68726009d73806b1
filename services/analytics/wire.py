"""Analytics responses written as protobuf wire bytes, column-wise from NumPy arrays (no message
objects per row): PriceOptions and ImpliedVolatility rows, GetIndicators' packed series and
timestamps. Each equals (or parses to) the message built field by field, the tests' oracle
(``tests/unit/analytics/_wire_oracle.py``, ``tests/unit/analytics/test_conversions.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aiots.core.conventions import NS_PER_S as NS
from aiots.core.conventions import ns_to_pb as ts_from_ns
from aiots.services.analytics.indicators import IndicatorValues
from aiots.services.analytics.pricing import F64, GREEK_NAMES, IvBatch, PricedBatch
from aiots.services.common.wire import varint
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb


def _key(desc: Any, name: str, wire: int) -> int:
    """One-byte field key of ``name`` in message descriptor ``desc`` (field numbers < 16)."""
    key = (int(desc.fields_by_name[name].number) << 3) | wire
    if key >= 0x80:
        raise ValueError(f"field {name} needs a multi-byte key")
    return key


def _greeks(greeks: dict[str, np.ndarray], i: int) -> cpb.Greeks:
    return cpb.Greeks(**{g: float(greeks[g][i]) for g in GREEK_NAMES if g in greeks})


def priced_wire(res: PricedBatch) -> bytes:
    """A serialised PriceOptionsResponse (zero doubles written explicitly, so it parses to the message
    built field by field): rows without a reason column-wise (``_rows_wire_split``), the rest one by one."""
    gd = cpb.Greeks.DESCRIPTOR
    rd = pb.PricingResult.DESCRIPTOR
    greeks = [(_key(gd, g, 1), np.asarray(res.greeks[g], dtype=np.float64)) for g in GREEK_NAMES]
    glen = 9 * len(greeks)
    if glen >= 0x80:
        raise ValueError("Greeks too long for a one-byte length")
    # PricingResult body: price, then the Greeks submessage key/length, then its doubles
    doubles = [(_key(rd, "price", 1), np.asarray(res.price, dtype=np.float64)), *greeks]
    outer = _key(pb.PriceOptionsResponse.DESCRIPTOR, "results", 2)
    slow: dict[int, bytes] = {}
    for i, reason in enumerate(res.reasons):
        if reason:
            row = pb.PricingResult(price=float(res.price[i]), greeks=_greeks(res.greeks, i), reason=reason)
            slow[i] = pb.PriceOptionsResponse(results=[row]).SerializeToString()
    return _rows_wire_split(outer, doubles, 1, (_key(rd, "greeks", 2), glen), slow)


def _rows_wire_split(
    outer: int, doubles: Sequence[tuple[int, F64]], at: int, sub: tuple[int, int], slow: dict[int, bytes]
) -> bytes:
    """``_rows_wire`` with a submessage header ``sub`` (key, length) inserted before ``doubles[at]``."""
    n = len(doubles[0][1])
    body = 2 + 9 * len(doubles)
    prefix = bytes([outer]) + varint(body)
    fields = [(f"p{i}", "u1") for i in range(len(prefix))]
    for i, _ in enumerate(doubles):
        if i == at:
            fields += [("sk", "u1"), ("sl", "u1")]
        fields += [(f"k{i}", "u1"), (f"v{i}", "<f8")]
    rec = np.empty(n, dtype=np.dtype(fields))
    for i, b in enumerate(prefix):
        rec[f"p{i}"] = b
    rec["sk"], rec["sl"] = sub
    for i, (key, values) in enumerate(doubles):
        rec[f"k{i}"] = key
        rec[f"v{i}"] = values
    return _splice(rec, slow)


def _splice(rec: np.ndarray, slow: dict[int, bytes]) -> bytes:
    """Rows of ``rec`` as bytes, with the rows in ``slow`` replaced by their own bytes."""
    if not slow:
        return rec.tobytes()
    parts: list[bytes] = []
    lo = 0
    for i in sorted(slow):
        parts += [rec[lo:i].tobytes(), slow[i]]
        lo = i + 1
    parts.append(rec[lo:].tobytes())
    return b"".join(parts)


def iv_wire(res: IvBatch) -> bytes:
    """A serialised ImpliedVolatilityResponse: rows without a reason column-wise; the rest one by one."""
    slow: dict[int, bytes] = {}
    for i, reason in enumerate(res.reasons):
        if reason:
            row = pb.ImpliedVolatilityResult(implied_volatility=float(res.iv[i]), reason=reason)
            slow[i] = pb.ImpliedVolatilityResponse(results=[row]).SerializeToString()
    key = _key(pb.ImpliedVolatilityResult.DESCRIPTOR, "implied_volatility", 1)
    outer = _key(pb.ImpliedVolatilityResponse.DESCRIPTOR, "results", 2)
    n = len(res.iv)
    rec = np.empty(n, dtype=np.dtype([("o", "u1"), ("l", "u1"), ("k", "u1"), ("v", "<f8")]))
    rec["o"], rec["l"], rec["k"], rec["v"] = outer, 9, key, np.asarray(res.iv, dtype=np.float64)
    return _splice(rec, slow)


def _len_field(key: int, body: bytes) -> bytes:
    """A length-delimited field: one-byte ``key``, varint length, ``body``."""
    return bytes([key]) + varint(len(body)) + body


def _varint_columns(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes of int64 ``v`` (negatives as 10-byte two's complement, as protobuf writes int64):
    an (n, L) uint8 matrix of 7-bit groups with continuation bits (L the longest), and each value's
    byte count."""
    u = np.asarray(v, dtype=np.int64).view(np.uint64)
    lengths = np.ones(u.shape, dtype=np.int64)
    for j in range(1, 10):
        lengths += u >= (np.uint64(1) << np.uint64(7 * j))
    width = int(lengths.max()) if u.size else 1
    groups = np.empty((u.size, width), dtype=np.uint8)
    for j in range(width):
        groups[:, j] = ((u >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
        groups[:, j] |= np.where(lengths > j + 1, 0x80, 0).astype(np.uint8)
    return groups, lengths


def timestamps_wire(key: int, ns: np.ndarray) -> bytes:
    """A repeated google.protobuf.Timestamp field (one-byte ``key``) of int64 ns UTC, encoded column-wise.

    Each element is ``key, len, [0x08 varint(seconds)], [0x10 varint(nanos)]`` (zero fields omitted,
    as protobuf writes them); the body is at most 17 bytes, so its length is one byte. When every
    element has the same layout (bar times: whole seconds of one varint length) the elements are
    fixed-width rows of one matrix; otherwise each row's bytes are picked out by a mask.
    """
    t = np.asarray(ns, dtype=np.int64)
    n = t.size
    if n == 0:
        return b""
    sec, nanos = np.divmod(t, NS)
    sg, sl = _varint_columns(sec)
    ng, nl = _varint_columns(nanos)
    sl = np.where(sec != 0, sl + 1, 0)  # tag + varint, or nothing
    nl = np.where(nanos != 0, nl + 1, 0)
    s_w, n_w = int(sl.max()), int(nl.max())
    mat = np.zeros((n, 2 + s_w + n_w), dtype=np.uint8)
    mat[:, 0] = key
    mat[:, 1] = (sl + nl).astype(np.uint8)
    if s_w:
        mat[:, 2] = 0x08
        mat[:, 3 : 2 + s_w] = sg[:, : s_w - 1]
    if n_w:
        mat[:, 2 + s_w] = 0x10
        mat[:, 3 + s_w :] = ng[:, : n_w - 1]
    if sl.min() == s_w and nl.min() == n_w:
        return mat.tobytes()
    col = np.arange(mat.shape[1])[None, :]
    mask = (col < 2) | ((col >= 2) & (col < 2 + sl[:, None])) | ((col >= 2 + s_w) & (col < 2 + s_w + nl[:, None]))
    return mat[mask].tobytes()


def _output_wire(name: str, series: np.ndarray, include_series: bool) -> bytes:
    value = float(series[-1]) if series.size else math.nan
    head = pb.IndicatorOutput(name=name, value=value).SerializeToString(deterministic=True)
    if include_series and series.size:
        packed = np.ascontiguousarray(series, dtype="<f8").tobytes()
        head += _len_field(_key(pb.IndicatorOutput.DESCRIPTOR, "series", 2), packed)
    return head


def indicators_wire(
    symbol: str,
    interval: str,
    ts: np.ndarray,
    values: Sequence[IndicatorValues],
    include_series: bool,
    source: str,
) -> bytes:
    """GetIndicatorsResponse as wire bytes, equal to the protobuf library's deterministic
    serialisation of the message built field by field (the tests' oracle); series and timestamps
    are written column-wise (packed doubles, :func:`timestamps_wire`) instead of element by element.
    ``source`` is the last field, so :func:`source_wire` can replace it on cached bytes."""
    n = int(ts.shape[0])
    d = pb.GetIndicatorsResponse.DESCRIPTOR
    head = pb.GetIndicatorsResponse(symbol=symbol, interval=interval, bars=n)
    if n:
        head.as_of.CopyFrom(ts_from_ns(int(ts[-1])))
    parts = [head.SerializeToString(deterministic=True)]
    out_key = _key(pb.IndicatorResult.DESCRIPTOR, "outputs", 2)
    res_key = _key(d, "results", 2)
    for v in values:
        res = pb.IndicatorResult(name=v.name, params={k: float(x) for k, x in v.params.items()})
        body = [res.SerializeToString(deterministic=True)]
        body += [_len_field(out_key, _output_wire(name, series, include_series)) for name, series in v.outputs]
        parts.append(_len_field(res_key, b"".join(body)))
    if include_series:
        parts.append(timestamps_wire(_key(d, "timestamps", 2), ts))
    parts.append(source_wire(source))
    return b"".join(parts)


def source_wire(source: str) -> bytes:
    """The GetIndicatorsResponse ``source`` field alone (empty for ""); appended last, it is the
    value a parser keeps (protobuf: the last occurrence of a singular field wins)."""
    return pb.GetIndicatorsResponse(source=source).SerializeToString(deterministic=True)
