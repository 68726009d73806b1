"""Snapshot ⇄ ``FeatureEvent`` (the ``features:<interval>`` topic's message), and the ``Bar`` of a
``BarEvent`` (the ``bars:<interval>`` topic's message) the features are computed from."""

from __future__ import annotations

import dataclasses

from aiots.services.features.params import FeatureParams
from aiots.services.features.state import Bar, Snapshot
from aiots.services.storage.queries import INTERVAL_NS
from aiots.v1 import common_pb2, events_pb2

_VALUES = (
    "atr", "rsi", "rsi_prev", "adx", "plus_di", "minus_di", "ema_fast", "ema_fast_prev", "ema_slow",
    "bb_upper", "bb_middle", "bb_lower", "volume_avg", "resistance", "support", "realized_vol",
)  # fmt: skip
_NS_INTERVAL = {ns: name for name, ns in INTERVAL_NS.items()}


def params_to_proto(p: FeatureParams) -> events_pb2.FeatureParams:
    return events_pb2.FeatureParams(**dataclasses.asdict(p))


def params_from_proto(m: events_pb2.FeatureParams) -> FeatureParams:
    return FeatureParams(**{f.name: getattr(m, f.name) for f in dataclasses.fields(FeatureParams)})


def _bar_to_proto(b: Bar, out: common_pb2.Bar) -> None:
    out.symbol = b.symbol
    out.interval = _NS_INTERVAL.get(b.interval_ns, "")
    out.ts.FromNanoseconds(b.ts_ns)
    out.open, out.high, out.low, out.close, out.volume = b.open, b.high, b.low, b.close, b.volume


def _bar_from_proto(m: common_pb2.Bar, ts_ns: int = 0) -> Bar:
    """The bar of ``m``, opening at ``ts_ns`` when given (else at the bar's own time)."""
    return Bar(m.symbol, ts_ns or m.ts.ToNanoseconds(), m.open, m.high, m.low, m.close, m.volume,
               INTERVAL_NS.get(m.interval, INTERVAL_NS["1m"]))  # fmt: skip


def bar_from_event(ev: events_pb2.BarEvent) -> Bar:
    """The bar of a ``bars:<interval>`` event, opening at the event's ``ts_event`` (else the bar's time)."""
    return _bar_from_proto(ev.bar, int(ev.ts_event))


def snapshot_to_event(snap: Snapshot, params: events_pb2.FeatureParams) -> events_pb2.FeatureEvent:
    """The event published for one snapshot (``params``: the owner's periods, converted once)."""
    ev = events_pb2.FeatureEvent(symbol=snap.bar.symbol, ts_event=snap.bar.ts_ns, params=params)
    _bar_to_proto(snap.bar, ev.bar)
    if snap.prev_bar is not None:
        _bar_to_proto(snap.prev_bar, ev.prev_bar)
    for name in _VALUES:
        setattr(ev, name, getattr(snap, name))
    return ev


def snapshot_from_event(ev: events_pb2.FeatureEvent) -> Snapshot:
    """The snapshot a ``FeatureEvent`` carries (the ATM IV is left to the reader)."""
    return Snapshot(
        bar=_bar_from_proto(ev.bar),
        prev_bar=_bar_from_proto(ev.prev_bar) if ev.HasField("prev_bar") else None,
        **{name: getattr(ev, name) for name in _VALUES},
    )
