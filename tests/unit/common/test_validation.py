"""The shared validators name the field, the value and what is allowed. Oracle: hand-derived cases
and the API's documented range (0001-01-01 is out, 1970 and 2199 are in)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aiots.services.common.errors import InvalidArgument
from aiots.services.common.validation import (
    require_budget,
    require_choice,
    require_enum,
    require_tickers,
    require_time_range,
    require_timestamp,
)
from aiots.v1 import analytics_pb2, common_pb2


def test_tickers_upper_cased_deduplicated_and_named_by_index() -> None:
    assert require_tickers("symbols", ["aapl", "MSFT", "AAPL"]) == ["AAPL", "MSFT"]
    with pytest.raises(InvalidArgument) as e:
        require_tickers("symbols", ["AAPL", "not a ticker"])
    assert e.value.field == "symbols[1]" and "'not a ticker'" in e.value.description
    with pytest.raises(InvalidArgument, match="a ticker is required"):
        require_tickers("symbols", [" "])


def test_timestamps_within_the_api_range() -> None:
    assert require_timestamp("start", Timestamp(seconds=1, nanos=5)) == 1_000_000_005
    assert require_timestamp("end", Timestamp(seconds=7_258_118_400 - 1)) > 0  # 2199-12-31
    for bad in (Timestamp(seconds=-62_135_596_800), Timestamp(seconds=7_258_118_400)):  # 0001-01-01, 2200-01-01
        with pytest.raises(InvalidArgument, match="outside the allowed range"):
            require_timestamp("start", bad)


def test_time_range_order() -> None:
    req = analytics_pb2.GetIndicatorsRequest(start=Timestamp(seconds=20), end=Timestamp(seconds=10))
    with pytest.raises(InvalidArgument) as e:
        require_time_range(req)
    assert e.value.field == "end" and "must be after start" in e.value.description
    assert require_time_range(req, ordered=False) == (20 * 10**9, 10 * 10**9)
    assert require_time_range(analytics_pb2.GetIndicatorsRequest()) == (None, None)


def test_enum_choice_and_budget_name_what_is_allowed() -> None:
    rights = (common_pb2.OPTION_RIGHT_CALL, common_pb2.OPTION_RIGHT_PUT)
    assert (
        require_enum("right", common_pb2.OPTION_RIGHT_PUT, rights, common_pb2.OptionRight)
        == common_pb2.OPTION_RIGHT_PUT
    )
    with pytest.raises(InvalidArgument, match="OPTION_RIGHT_UNSPECIFIED is not allowed; use one of OPTION_RIGHT_CALL"):
        require_enum("right", common_pb2.OPTION_RIGHT_UNSPECIFIED, rights, common_pb2.OptionRight)
    with pytest.raises(InvalidArgument, match="'x' is not allowed; use one of a, b"):
        require_choice("mode", "x", ["a", "b"])
    require_budget("rows", 10, 10, "rows")
    with pytest.raises(InvalidArgument, match="costs 11 rows, over the per-request limit of 10") as e:
        require_budget("rows", 11, 10, "rows")
    assert e.value.reason == "COST_LIMIT"
