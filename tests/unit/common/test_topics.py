"""Nothing goes on the bus that no service reads: the ingestion pipeline publishes only the
catalogued topics (each with a consumer), and every topic a service consumes is catalogued.

Oracle: the events a simulated market session actually puts on a recording bus, and the
``consume`` calls found in the source with ``ast``."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import Message

from aiots.core import conventions as cv
from aiots.services.common import topics
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.simulator import SimulatorSource

ROOT = Path(__file__).resolve().parents[3]


class RecordingBus:
    def __init__(self) -> None:
        self.topics: dict[str, int] = {}

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Message]]) -> None:
        self.topics[topic] = self.topics.get(topic, 0) + len(items)


async def test_a_simulated_session_publishes_only_consumed_topics() -> None:
    bus = RecordingBus()
    start = cv.ny_ns(dt.date(2025, 11, 25), dt.time(10, 0))
    src = SimulatorSource(Pipeline(bus=bus), ["SPY"], seed=3, start_ns=start, tick_s=30.0)
    await src.setup()
    await src.run_steps(12)  # six minutes: closed 1m bars, option quotes, trades, quotes
    await src.pipeline.close_bars()
    assert bus.topics.get(topics.BARS_1M, 0) > 0 and bus.topics.get(topics.OPTION_QUOTES, 0) > 0
    assert set(bus.topics) <= set(topics.CATALOGUE), (
        f"published without a consumer: {set(bus.topics) - set(topics.CATALOGUE)}"
    )


def _consumed_topics() -> dict[str, set[str]]:
    """Topic names passed to ``.consume(...)`` per service folder (literals and module constants)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "services").rglob("*.py"):
        tree = ast.parse(path.read_text())
        consts = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "consume":
                arg = node.args[0] if node.args else None
                name = arg.value if isinstance(arg, ast.Constant) else consts.get(getattr(arg, "id", ""))
                if isinstance(name, str):
                    out.setdefault(path.relative_to(ROOT / "services").parts[0], set()).add(name)
    return out


def test_every_consumed_topic_is_catalogued_with_its_consumer() -> None:
    consumed = _consumed_topics()
    assert consumed, "found no consume() calls: the scan is broken"
    for service, names in consumed.items():
        for name in names:
            assert name in topics.CATALOGUE, f"{service} consumes uncatalogued topic {name!r}"
            assert service in topics.CATALOGUE[name].consumers, f"{service} reads {name!r}; add it to its consumers"


def test_daily_bars_are_not_live() -> None:
    assert "1d" not in topics.LIVE_BAR_INTERVALS and topics.LIVE_BAR_INTERVALS == ("1m",)


def test_features_are_computed_once_and_read_by_signals() -> None:
    """Analytics' live state is the only reader of closed bars; signals reads the features it publishes."""
    consumed = _consumed_topics()
    assert topics.FEATURES_1M in consumed["signals"] and topics.BARS_1M not in consumed["signals"]
    assert topics.CATALOGUE[topics.BARS_1M].consumers == ("analytics",)
    feats = topics.CATALOGUE[topics.FEATURES_1M]
    assert (feats.publisher, feats.consumers, feats.event) == ("analytics", ("signals",), "FeatureEvent")
    assert topics.features("1m") == topics.FEATURES_1M
