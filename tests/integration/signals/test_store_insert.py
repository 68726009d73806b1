"""New signals stored in one round trip (``SignalStore.insert_many``) on the real PostgreSQL.

Oracle: each signal's own fields (the columns, the opening status row) and its proto (the payload);
ids stored already (another replica's) are left as they were and not reported as new."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from aiots.core.conventions import ns_to_datetime
from aiots.services.signals.conversions import signal_to_proto
from aiots.services.signals.store import SignalStore
from tests.integration.signals.test_signal_service import make_signal

pytestmark = pytest.mark.integration


async def test_a_batch_is_stored_whole_and_stored_ids_are_left_alone(pg_pool: Any) -> None:
    await pg_pool.execute("DELETE FROM signals")
    store = SignalStore(pg_pool)
    a, b, c = make_signal(801, "AAPL"), make_signal(802, "MSFT", "mean_reversion", 0.55), make_signal(803, "SPY")
    assert await store.insert(a)  # stored before the batch (another replica, say)
    other_a = dataclasses.replace(a, confidence=0.99, history=list(a.history))  # a second version of a
    got = await store.insert_many([(b, None), (other_a, None), (c, signal_to_proto(c)), (b, None)])
    assert got == {b.id, c.id}
    rows = {r["id"]: r for r in await pg_pool.fetch("SELECT * FROM signals")}
    assert set(rows) == {a.id, b.id, c.id}
    assert rows[a.id]["confidence"] == a.confidence  # the first version stays
    for s in (a, b, c):
        r = rows[s.id]
        assert (r["symbol"], r["strategy"], r["direction"], r["status"]) == (
            s.symbol, s.strategy, int(s.direction), int(s.status)
        )  # fmt: skip
        assert (r["confidence"], r["entry_price"], r["target_price"], r["stop_price"], r["iv"], r["iv_rank"]) == (
            s.confidence, s.entry_price, s.target_price, s.stop_price, s.iv, s.iv_rank
        )  # fmt: skip
        assert r["created_at"] == ns_to_datetime(s.created_ns) and r["horizon"] == ns_to_datetime(s.horizon_ns)
        assert (
            r["occ_symbol"] == s.contract.occ_symbol and bytes(r["payload"]) == signal_to_proto(s).SerializeToString()
        )
        hist = await pg_pool.fetch(
            "SELECT status, at, option_price, note FROM signal_status_history WHERE signal_id = $1", s.id
        )
        h = s.history[0]
        assert [tuple(x) for x in hist] == [(int(h.status), ns_to_datetime(h.at_ns), h.option_price, h.note)]
    assert await store.insert_many([]) == set()
    assert not await store.insert(b)  # stored: not new
    await pg_pool.execute("DELETE FROM signals")
