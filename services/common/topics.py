"""The bus topics: every topic a service publishes, its event type, who consumes it and why.

A topic is published only when a service consumes it (``tests/unit/common/test_topics.py`` checks
the publishers and consumers in the code against this table). Ingestion also receives trades,
stock quotes, option trades and 1-second bars; those go to storage and the price book, not onto
the bus, because no service reads them as events (option trades still set the session volume that
``options:quotes`` events carry). Daily bars are not published either: they are rolled up from
stored 1-minute bars, so a ``1d`` answer is computed from storage, never from a live state that
no bar would ever update.

Live features are computed once: analytics' live state folds each closed ``bars:1m`` bar into the
one feature state of its symbol and publishes the result on ``features:1m``; the signals service
reads that topic instead of keeping indicators of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """One bus topic (stream ``<ns>:v1:<name>:<key>``)."""

    name: str
    event: str  # the aiots.v1.events message carried
    key: str  # what the stream is keyed by
    publisher: str
    consumers: tuple[str, ...]
    why: str


BARS_1M = "bars:1m"
FEATURES_1M = "features:1m"
OPTION_QUOTES = "options:quotes"
SIGNALS = "signals"
#: collection jobs (Redis bus only): the replica that reads an entry runs the job
INGESTION_JOBS = "ingestion:jobs"
#: pub/sub channel (not a stream) on which every signals replica hears every signal event
SIGNALS_CHANNEL = "signals"

CATALOGUE: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(BARS_1M, "BarEvent", "ticker", "ingestion", ("analytics",),
              "closed 1-minute bars: analytics' live state, the one owner of the streaming features"),
        Topic(FEATURES_1M, "FeatureEvent", "ticker", "analytics", ("signals",),
              "the bar and its features, computed once: the signal strategies read them (no indicators of their own)"),
        Topic(OPTION_QUOTES, "OptionQuoteEvent", "underlying ticker", "ingestion", ("signals", "portfolio"),
              "the live chain: contract selection and exits; marks for open positions"),
        Topic(SIGNALS, "SignalEvent", "ticker", "signals", ("portfolio",),
              "new signals and their exits: follow rules place orders from them"),
        Topic(INGESTION_JOBS, "collection job id (UTF-8)", "collect", "ingestion", ("ingestion",),
              "collection jobs shared by ingestion replicas in one consumer group (services/ingestion/jobs.py)"),
    )
}  # fmt: skip

#: bar intervals whose closed bars go on the bus (the live states follow only these)
LIVE_BAR_INTERVALS: tuple[str, ...] = tuple(n.split(":", 1)[1] for n in CATALOGUE if n.startswith("bars:"))


def bars(interval: str) -> str:
    """The topic of closed ``interval`` bars, e.g. ``bars:1m``."""
    return f"bars:{interval}"


def features(interval: str) -> str:
    """The topic of the features of closed ``interval`` bars, e.g. ``features:1m``."""
    return f"features:{interval}"


def published(name: str) -> bool:
    """Whether anything consumes ``name`` (only such topics are published)."""
    return name in CATALOGUE
