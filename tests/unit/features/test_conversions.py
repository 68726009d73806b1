"""A snapshot survives the ``FeatureEvent`` wire format field for field (NaN included).

Oracle: the snapshot itself (dataclass equality) and the serialised bytes parsed back."""

from __future__ import annotations

import math

from aiots.core.conventions import NS_PER_MIN
from aiots.services.features.conversions import (
    bar_from_event,
    params_from_proto,
    params_to_proto,
    snapshot_from_event,
    snapshot_to_event,
)
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import Bar, SymbolFeatures
from aiots.v1 import events_pb2


def test_snapshots_round_trip_through_the_event() -> None:
    p = FeatureParams(ema_fast=3, ema_slow=5, rv_bars=30)
    f = SymbolFeatures(p)
    msg = params_to_proto(p)
    assert params_from_proto(msg) == p
    for i in range(60):
        c = 100.0 + math.sin(i / 3.0)
        bar = Bar("MSFT", 1_700_000_000 * 10**9 + i * NS_PER_MIN, c - 0.1, c + 0.3, c - 0.4, c, 1000.0 + i)
        snap = f.update(bar)
        assert snap is not None
        ev = events_pb2.FeatureEvent.FromString(snapshot_to_event(snap, msg).SerializeToString())
        assert ev.symbol == "MSFT" and ev.ts_event == bar.ts_ns and ev.bar.interval == "1m"
        back = snapshot_from_event(ev)
        for name in ("atr", "rsi", "rsi_prev", "adx", "ema_fast", "volume_avg", "resistance", "realized_vol"):
            a, b = getattr(snap, name), getattr(back, name)
            assert a == b or (math.isnan(a) and math.isnan(b)), name
        assert back.bar == snap.bar and back.prev_bar == snap.prev_bar
        assert back.ready == snap.ready
    assert snap.ready and not math.isnan(back.realized_vol)


def test_a_bar_event_gives_the_bar_opening_at_its_ts_event() -> None:
    ev = events_pb2.BarEvent(ts_event=1_700_000_040_000_000_000, closed=True)
    ev.bar.symbol, ev.bar.interval = "SPY", "1d"
    ev.bar.open, ev.bar.high, ev.bar.low, ev.bar.close, ev.bar.volume = 1.0, 2.0, 0.5, 1.5, 300.0
    ev.bar.ts.FromNanoseconds(1_700_000_000_000_000_000)
    assert bar_from_event(ev) == Bar("SPY", 1_700_000_040_000_000_000, 1.0, 2.0, 0.5, 1.5, 300.0, 1440 * NS_PER_MIN)
    ev.ts_event = 0  # no event time: the bar's own
    assert bar_from_event(ev).ts_ns == 1_700_000_000_000_000_000
