"""Option quotes are sent when a contract's bid or ask changed and at least every
``OPTION_QUOTE_REFRESH_S`` otherwise, so the engine (60 s quote-age limit) always has a fresh quote
of every listed contract, without re-sending ~30,000 unchanged quotes per simulated minute."""

from __future__ import annotations

import datetime as dt
import itertools

from aiots.core import conventions as cv
from aiots.core.execution import ExecutionModel
from aiots.services.ingestion.sources.simulator.records import OPTION_QUOTE_REFRESH_S, MarketSimulator


def test_every_contract_stays_fresh_and_unchanged_quotes_are_not_resent() -> None:
    s = cv.calendar().session(dt.date(2026, 12, 1))
    sim = MarketSimulator(["AAPL", "SPY"], 7, start_ns=s.open_ns + 60 * cv.NS_PER_MIN, history_days=5)
    sent: dict[int, list[tuple[int, int, int]]] = {}
    since = 5
    while sim.now_ns < s.open_ns + 65 * cv.NS_PER_MIN:
        since += 1
        quote = since >= 5
        for r in sim.step(1.0, option_quotes=quote):
            if type(r).__name__ == "CBBOMsg":
                sent.setdefault(r.instrument_id, []).append((r.ts_event, r.levels[0].bid_px, r.levels[0].ask_px))
        if quote:
            since = 0
    listed = {c.instrument_id for st in sim.state.values() for c in st.contracts}
    assert set(sent) == listed
    limit = ExecutionModel().max_quote_age_ns
    refresh = int(OPTION_QUOTE_REFRESH_S * cv.NS_PER_S)
    assert refresh < limit
    resent_unchanged = 0
    for quotes in sent.values():
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(quotes)]
        assert max(gaps, default=0) <= refresh + 5 * cv.NS_PER_S  # never older than the refresh + one quote step
        for a, b in itertools.pairwise(quotes):
            if (a[1], a[2]) == (b[1], b[2]):
                resent_unchanged += 1
                assert b[0] - a[0] >= refresh  # an unchanged quote is only re-sent by the refresh
    assert resent_unchanged > 0  # the refresh did happen for quiet contracts
