"""Reference GetIndicatorsResponse built field by field with the protobuf library (the oracle that
:func:`aiots.services.analytics.conversions.indicators_wire` is compared against, and the naive
baseline ``bench/analytics.py`` times it against)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aiots.core.conventions import ns_to_pb
from aiots.services.analytics.indicators import IndicatorValues
from aiots.v1 import analytics_pb2 as pb


def indicators_to_proto_naive(
    symbol: str,
    interval: str,
    ts: np.ndarray,
    values: Sequence[IndicatorValues],
    include_series: bool,
    source: str,
) -> pb.GetIndicatorsResponse:
    """The message, field by field: ``ts`` int64 ns UTC bar times, one IndicatorResult per value."""
    n = int(ts.shape[0])
    out = pb.GetIndicatorsResponse(symbol=symbol, interval=interval, bars=n, source=source)
    if n:
        out.as_of.CopyFrom(ns_to_pb(int(ts[-1])))
    if include_series:
        out.timestamps.extend(ns_to_pb(int(t)) for t in ts.tolist())
    for v in values:
        res = pb.IndicatorResult(name=v.name, params={k: float(x) for k, x in v.params.items()})
        for name, series in v.outputs:
            o = pb.IndicatorOutput(name=name, value=float(series[-1]) if series.size else math.nan)
            if include_series:
                o.series.extend(series.tolist())
            res.outputs.append(o)
        out.results.append(res)
    return out
