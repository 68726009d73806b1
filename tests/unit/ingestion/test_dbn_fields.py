"""DBN field decoding against Databento's own sentinels (``databento_dbn``) and exact decimal values."""

from __future__ import annotations

import math

import databento_dbn as dbn
import numpy as np

from aiots.services.ingestion.dbn_fields import UNDEF_PRICE, UNDEF_TS, _cstr, _px, _side, _ts, _ts_scalar


def test_sentinels_are_databento_s() -> None:
    assert UNDEF_PRICE == dbn.UNDEF_PRICE and UNDEF_TS == dbn.UNDEF_TIMESTAMP


def test_prices_are_dollars_and_undefined_is_nan() -> None:
    raw = np.array([250_000_000_000, 1, -1_500_000_000, dbn.UNDEF_PRICE], dtype=np.int64)
    out = _px(raw)
    assert out[:3].tolist() == [250.0, 1e-9, -1.5] and math.isnan(out[3])


def test_timestamps_undefined_is_zero() -> None:
    raw = np.array([1_700_000_000_000_000_000, dbn.UNDEF_TIMESTAMP], dtype=np.uint64)
    assert _ts(raw).tolist() == [1_700_000_000_000_000_000, 0]
    assert _ts_scalar(dbn.UNDEF_TIMESTAMP) == 0 and _ts_scalar(5) == 5


def test_side_and_c_strings() -> None:
    assert _side(np.array([b"A", b"B", b"N"], dtype="S1")).tolist() == [ord("A"), ord("B"), ord("N")]
    assert _cstr(b"AAPL\x00\x00junk") == "AAPL" and _cstr(np.bytes_(b" SPY ")) == "SPY" and _cstr("QQQ ") == "QQQ"
