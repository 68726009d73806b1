"""DBN field decoding, vectorised: fixed-point prices (int64 x 1e-9 dollars) to float64 dollars with
``UNDEF_PRICE`` as NaN, uint64 ns timestamps with ``UNDEF_TIMESTAMP`` as 0, side bytes, and
NUL-padded C strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv

UNDEF_PRICE = 2**63 - 1
UNDEF_TS = 2**64 - 1
PRICE_SCALE = 1e-9
PRICE_DIVISOR = 1e9
NS_PER_DAY = cv.NS_PER_DAY
UNDEF_MULTIPLIER = 2**31 - 1


def _px(a: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    a = a.astype(np.int64, copy=False)
    out = a.astype(np.float64) / PRICE_DIVISOR  # division is correctly rounded: 250000000000 -> 250.0 exactly
    out[a == UNDEF_PRICE] = np.nan
    return out


def _ts(a: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    u = a.astype(np.uint64, copy=False)
    out = u.astype(np.int64)
    out[u == np.uint64(UNDEF_TS)] = 0
    return out


def _side(a: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    if a.dtype.kind == "S":
        return a.view(np.uint8).astype(np.int16)
    return a.astype(np.int16)


def _cstr(v: Any) -> str:
    if isinstance(v, bytes | np.bytes_):
        return bytes(v).split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return str(v).strip()


def _ts_scalar(v: int) -> int:
    return 0 if v >= UNDEF_TS else int(v)
