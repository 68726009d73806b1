"""Request-field checks every servicer shares; each raises ``InvalidArgument`` naming the field,
the value, and what is allowed (the error interceptor turns it into INVALID_ARGUMENT + BadRequest).

One rule per fact: tickers follow :data:`aiots.core.conventions.TICKER_RULE` and timestamps the
API range ``TIMESTAMP_MIN_NS..TIMESTAMP_MAX_NS`` (both from :mod:`aiots.core.conventions`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from aiots.core import conventions as cv
from aiots.services.common.errors import InvalidArgument


class _Timestamp(Protocol):
    seconds: int
    nanos: int


def _iso(ns: int) -> str:
    return cv.ns_to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


ALLOWED_TIME_RANGE = f"{_iso(cv.TIMESTAMP_MIN_NS)} .. {_iso(cv.TIMESTAMP_MAX_NS)}"


def require_ticker(field: str, value: Any) -> str:
    """The upper-cased ticker; InvalidArgument when blank or breaking the ticker rule."""
    try:
        return cv.normalize_ticker(value, field=field)
    except cv.InvalidSymbol:
        shown = value if isinstance(value, str) else str(value)
        if not shown.strip():
            raise InvalidArgument(field, f"a ticker is required, e.g. 'AAPL' ({cv.TICKER_RULE})") from None
        raise InvalidArgument(field, f"{shown!r} is not a ticker ({cv.TICKER_RULE})") from None


def require_tickers(field: str, values: Sequence[Any]) -> list[str]:
    """Each entry a ticker (``field[i]`` named on error); duplicates dropped, order kept."""
    return list(dict.fromkeys(require_ticker(f"{field}[{i}]", v) for i, v in enumerate(values)))


def require_timestamp(field: str, ts: _Timestamp) -> int:
    """int64 ns UTC of a ``google.protobuf.Timestamp`` within the API's time range."""
    seconds, nanos = int(ts.seconds), int(ts.nanos)
    if not 0 <= nanos < cv.NS_PER_S:
        raise InvalidArgument(field, f"nanos {nanos} out of range 0..999999999")
    ns = seconds * cv.NS_PER_S + nanos
    if not cv.TIMESTAMP_MIN_NS <= ns <= cv.TIMESTAMP_MAX_NS:
        raise InvalidArgument(field, f"{seconds} s since 1970 is outside the allowed range {ALLOWED_TIME_RANGE} (UTC)")
    return ns


def require_time_range(
    request: Any, start_field: str = "start", end_field: str = "end", *, ordered: bool = True
) -> tuple[int | None, int | None]:
    """``(start_ns, end_ns)`` of the optional Timestamp fields of ``request`` (None when unset),
    each within the allowed range; with ``ordered`` the end must be after the start."""
    start = require_timestamp(start_field, getattr(request, start_field)) if request.HasField(start_field) else None
    end = require_timestamp(end_field, getattr(request, end_field)) if request.HasField(end_field) else None
    if ordered and start is not None and end is not None and end <= start:
        raise InvalidArgument(end_field, f"{end_field} {_iso(end)} must be after {start_field} {_iso(start)}")
    return start, end


def require_enum(field: str, value: int, allowed: Collection[int], names: Any) -> int:
    """``value`` when it is one of ``allowed`` (enum numbers); else InvalidArgument listing the
    valid names. ``names`` is the generated enum wrapper (``common_pb2.OptionRight``)."""
    if value in allowed:
        return value
    valid = ", ".join(names.Name(v) for v in allowed)
    got = names.Name(value) if value in names.values() else str(value)
    raise InvalidArgument(field, f"{got} is not allowed; use one of {valid}")


def require_choice(field: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` when it is one of the strings ``allowed``; else InvalidArgument listing them."""
    if value in allowed:
        return value
    raise InvalidArgument(field, f"{value!r} is not allowed; use one of {', '.join(allowed)}")


def require_budget(field: str, cost: int, limit: int, what: str) -> None:
    """Refuse a request whose work ``cost`` (in units of ``what``) exceeds ``limit``."""
    if cost > limit:
        raise InvalidArgument(
            field,
            f"request costs {cost:,} {what}, over the per-request limit of {limit:,}; split it into smaller requests",
            reason="COST_LIMIT",
        )
