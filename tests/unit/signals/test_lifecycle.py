"""Exit rules on hand-built quotes: target and stop both on the bid (executable), P&L from the exit
price after fees on both legs, updates stamped with the quote's time. The horizon, derived by hand
from the issue's rule: sold at the horizon at the bid of the latest quote known then when the
execution model accepts it (a bid, at most 60 s old by default), else at the first accepted quote
after, stamped at its time."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core.conventions import ny_ns
from aiots.core.execution import ExecutionModel
from aiots.services.signals.lifecycle import LifecycleTracker, exec_quote, exit_at_deadline
from aiots.services.signals.models import Direction, GreeksTU, OptionQuote, Signal, Status

T0 = ny_ns(dt.date(2025, 10, 9), dt.time(10, 0))  # a regular Thursday session, 09:30-16:00 ET
S = 10**9
H = T0 + 3600 * S  # the signals' horizon (11:00)
Q = OptionQuote("AAPL  251017C00200000", "AAPL", "2025-10-17", T0 + 10**15, 200.0, True, 1.98, 2.02, ts_ns=T0)


def sig(i: str = "A", fee: float = 0.0) -> Signal:
    return Signal(
        id=i, created_ns=T0, symbol="AAPL", underlying_price=200.0, direction=Direction.BULLISH,
        strategy="momentum_breakout", contract=Q, entry_price=2.02, target_price=2.16, stop_price=1.90,
        horizon_ns=T0 + 3600 * 10**9, confidence=0.5, expected_return_pct=3, reward_risk=1.1,
        greeks=GreeksTU(0.5, 0.05, -0.1, 0.2, 0.03), iv=0.3, iv_rank=40, reasons=(), projected_move=3.0,
        fee_per_contract=fee,
    )  # fmt: skip


def test_stop_triggers_on_the_bid_and_fills_there() -> None:
    t = LifecycleTracker()
    t.add(sig())
    # ask above the target but bid below it: a holder can't sell there yet
    assert t.on_quote(replace(Q, bid=2.10, ask=2.20, ts_ns=T0 + 2)) == []
    assert t.on_quote(replace(Q, bid=1.91, ask=1.95, ts_ns=T0 + 3)) == []  # bid above the stop
    (s,) = t.on_quote(replace(Q, bid=1.90, ask=1.94, ts_ns=T0 + 4))  # bid at the stop
    assert s.status is Status.STOPPED and s.exit_price == 1.90 and s.updated_ns == T0 + 4
    assert s.pnl_pct == pytest.approx((1.90 / 2.02 - 1) * 100)


def test_pnl_after_fees_on_both_legs() -> None:
    t = LifecycleTracker()
    t.add(sig(fee=0.65))
    (s,) = t.on_quote(replace(Q, bid=2.17, ask=2.21, ts_ns=T0 + 5))
    # bought at 2.02 + 0.0065/share fees, sold at 2.17 - 0.0065: by hand
    assert s.pnl_pct == pytest.approx(((2.17 - 0.0065) / (2.02 + 0.0065) - 1) * 100)


def test_target_hit_then_horizon_on_a_fresh_quote_sells_at_its_bid_at_the_horizon() -> None:
    t = LifecycleTracker()
    t.add(sig("A"))
    (s,) = t.on_quote(replace(Q, bid=2.17, ask=2.21, ts_ns=T0 + 5))
    assert s.status is Status.TARGET_HIT and s.exit_price == 2.17 and t.open_signals() == []
    t.add(sig("B"))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 60 * S))  # 60 s old at the horizon: allowed
    assert t.on_time(H - 1) == []
    (e,) = t.on_time(H + 30 * S)  # a later clock still decides at the horizon, on the quote known then
    assert e.status is Status.EXPIRED and e.exit_price == 2.01  # the bid, never the mid
    assert [h.status for h in e.history] == [Status.EXPIRED] and e.updated_ns == e.exit_ns == H


def test_quote_at_the_horizon_sells_there() -> None:
    t = LifecycleTracker()
    t.add(sig("B"))
    (e,) = t.on_quote(replace(Q, bid=2.05, ask=2.09, ts_ns=H))  # above the target, but the horizon came
    assert (e.status, e.exit_ns, e.exit_price) == (Status.EXPIRED, H, 2.05)


def test_first_quote_after_the_horizon_does_not_replace_the_one_known_at_it() -> None:
    t = LifecycleTracker()
    t.add(sig("B"))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 10 * S))
    (e,) = t.on_quote(replace(Q, bid=2.12, ask=2.16, ts_ns=H + 30 * S))  # arrives before the clock ticks
    assert (e.exit_ns, e.exit_price) == (H, 2.01)


def test_stale_quote_at_the_horizon_waits_for_the_first_fresh_quote() -> None:
    t = LifecycleTracker()
    t.add(sig("B"))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 61 * S))  # 61 s old at the horizon: stale
    assert t.on_time(H) == [] and t.on_time(H + 300 * S) == []
    assert [s.id for s in t.open_signals()] == ["B"]
    (e,) = t.on_quote(replace(Q, bid=1.95, ask=1.99, ts_ns=H + 400 * S))
    assert (e.status, e.exit_ns, e.exit_price) == (Status.EXPIRED, H + 400 * S, 1.95)
    assert e.updated_ns == H + 400 * S and t.open_signals() == []
    # the quote age is the execution model's: with 120 s allowed, the same quote sells at the horizon
    t2 = LifecycleTracker(ExecutionModel(max_quote_age_ns=120 * S))
    t2.add(sig("B"))
    t2.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 61 * S))
    (e2,) = t2.on_time(H)
    assert (e2.exit_ns, e2.exit_price) == (H, 2.01)


def test_no_bid_at_the_horizon_waits() -> None:
    t = LifecycleTracker()
    t.add(sig("B"))
    t.on_quote(replace(Q, bid=0.0, ask=2.05, ts_ns=H - 5 * S))  # fresh, but nothing to sell to
    assert t.on_time(H) == []
    assert t.on_quote(replace(Q, bid=0.0, ask=2.04, ts_ns=H + 60 * S)) == []
    (e,) = t.on_quote(replace(Q, bid=1.97, ask=2.03, ts_ns=H + 120 * S))
    assert (e.exit_ns, e.exit_price) == (H + 120 * S, 1.97)


def test_entry_quote_only_is_stale_at_the_horizon_and_the_contract_settles_at_expiry() -> None:
    t = LifecycleTracker()
    occ = "AAPL  251017C00205000"
    t.add(replace(sig("C"), contract=replace(Q, occ_symbol=occ)))  # quoted at T0, an hour before the horizon
    assert t.on_time(H) == []
    assert t.on_time(Q.expiry_ns - 1, spot=203.0) == []
    # never quoted again: at expiry the 200 call is worth its intrinsic value, 203 - 200
    (e,) = t.on_time(Q.expiry_ns, "AAPL", spot=203.0)
    assert (e.status, e.exit_ns, e.exit_price) == (Status.EXPIRED, Q.expiry_ns, pytest.approx(3.0))


def test_exits_come_in_signal_id_order() -> None:
    t = LifecycleTracker()
    for i in ("Z", "B", "M"):
        t.add(sig(i))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 5 * S))
    assert [s.id for s in t.on_time(H)] == ["B", "M", "Z"]


class _EveryPass(LifecycleTracker):
    """The generic on_time: every call walks every open signal, filters by symbol and decides
    afresh (no skip before the next decision, no per-symbol index, no refused decision remembered)."""

    def on_time(self, now_ns: int, symbol: str | None = None, spot: float | None = None) -> list[Signal]:
        changed: list[Signal] = []
        for s in sorted(self.open_signals(), key=lambda x: x.id):
            if (symbol is not None and s.symbol != symbol) or now_ns < s.horizon_ns:
                continue
            latest = self._latest.get(s.contract.occ_symbol)
            fill = exit_at_deadline(self.execution, exec_quote(latest) if latest else None, s.horizon_ns)
            if fill is not None:
                changed.append(self._expire(s, fill))
            elif now_ns >= s.contract.expiry_ns:
                c = s.contract
                value = 0.0
                if spot is not None and math.isfinite(spot):
                    value = max(0.0, spot - c.strike if c.is_call else c.strike - spot)
                changed.append(self._close(s, Status.EXPIRED, c.expiry_ns, value, "intrinsic"))
        return changed


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "time", "quote", "replace"]),
            st.integers(0, 5),  # signal / contract number
            st.one_of(st.integers(-120, 7200), st.sampled_from([10**6 - 1, 10**6, 10**6 + 60])),  # s after T0; expiry
            st.sampled_from(["AAPL", "MSFT", None]),
        ),
        max_size=40,
    )
)
def test_on_time_shortcuts_are_the_full_pass(ops: list[tuple[str, int, int, str | None]]) -> None:
    """Signals added, quoted, replaced and timed in any order, up to and past their contract's expiry: the
    same changes, to the same signals, as the tracker that walks every open signal and decides
    afresh on every call (no skip before the next decision, no refused decision remembered). The
    open signals counted per strategy as they open and close equal a count over them, at every step."""
    fast, full = LifecycleTracker(), _EveryPass()
    for kind, k, secs, symbol in ops:
        at = T0 + secs * S
        occ = f"AAPL  251017C00{200 + k}000"
        quote = replace(Q, occ_symbol=occ, bid=1.5 + 0.2 * (k % 3), ask=2.3, ts_ns=at)
        if kind == "add":
            one = replace(
                sig(f"S{k}{secs}"),
                symbol=symbol or "AAPL",
                contract=quote,
                horizon_ns=at + (k + 1) * 600 * S,
                strategy=("momentum_breakout", "mean_reversion")[k % 2],
            )
            fast.add(one)
            full.add(replace(one, history=[]))  # a separate copy (the trackers mutate what they hold)
        elif kind == "replace":  # another replica's version of an open signal: another horizon
            open_ids = sorted(s.id for s in full.open_signals())
            if open_ids:
                was = next(s for s in full.open_signals() if s.id == open_ids[k % len(open_ids)])
                other = replace(was, horizon_ns=at + (k + 1) * 300 * S, history=[])
                fast.replace(other)
                full.replace(replace(other, history=[]))
        elif kind == "time":
            got, want = fast.on_time(at, symbol, 201.0), full.on_time(at, symbol, 201.0)
            assert [(s.id, s.status, s.exit_ns, s.exit_price) for s in got] == [
                (s.id, s.status, s.exit_ns, s.exit_price) for s in want
            ]
        else:
            got, want = fast.on_quote(quote), full.on_quote(quote)
            assert [(s.id, s.status, s.exit_ns, s.exit_price) for s in got] == [
                (s.id, s.status, s.exit_ns, s.exit_price) for s in want
            ]
        assert fast.open_counts() == dict(Counter(s.strategy for s in fast.open_signals()))
    assert sorted(s.id for s in fast.open_signals()) == sorted(s.id for s in full.open_signals())


def test_a_later_horizon_is_still_decided_after_an_earlier_one() -> None:
    """After deciding A at its horizon, B (a later horizon, same contract) is decided at its own."""
    t = LifecycleTracker()
    t.add(sig("A"))
    t.add(replace(sig("B"), horizon_ns=H + 600 * S))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 30 * S))
    assert [s.id for s in t.on_time(H)] == ["A"]
    assert t.on_time(H + 300 * S) == []
    t.on_quote(replace(Q, bid=2.03, ask=2.07, ts_ns=H + 570 * S))
    (b,) = t.on_time(H + 600 * S)
    assert (b.id, b.status, b.exit_price, b.exit_ns) == ("B", Status.EXPIRED, 2.03, H + 600 * S)


def test_a_refused_horizon_decision_is_retaken_when_a_quote_known_at_the_horizon_arrives_late() -> None:
    """Refused at the horizon on the stale entry quote; then a quote stamped before the horizon
    arrives (late): the horizon decision is taken again on it and sells at its bid, at the horizon."""
    t = LifecycleTracker()
    t.add(sig("A"))
    assert t.on_time(H) == [] and t.on_time(H + 60 * S) == []  # the entry quote is an hour old: refused
    assert t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 30 * S)) == []  # before the horizon
    (a,) = t.on_time(H + 120 * S)
    assert (a.status, a.exit_price, a.exit_ns) == (Status.EXPIRED, 2.01, H)


def test_a_call_for_one_symbol_decides_only_its_signals_and_keeps_its_own_next_decision() -> None:
    """The per-symbol skip: an earlier pass that found nothing due keeps the symbol's next decision
    at its signal's horizon (not its expiry), and another symbol's calls neither decide nor hide it."""
    t = LifecycleTracker()
    msft = replace(Q, occ_symbol="MSFT  251017C00400000", underlying="MSFT")
    t.add(sig("A"))
    t.add(replace(sig("M"), symbol="MSFT", contract=msft, horizon_ns=H + 600 * S))
    t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=H - 5 * S))
    t.on_quote(replace(msft, bid=2.00, ask=2.04, ts_ns=H + 595 * S))  # between its stop and target
    assert t.on_time(H - 1, "AAPL") == []  # a pass over AAPL: nothing due yet
    assert t.on_time(H, "MSFT") == []  # MSFT's horizon is later; AAPL's signal is not its to decide
    (a,) = t.on_time(H, "AAPL")
    assert (a.id, a.exit_ns, a.exit_price) == ("A", H, 2.01)
    (m,) = t.on_time(H + 600 * S, "MSFT")
    assert (m.id, m.exit_price) == ("M", 2.00)


def test_a_late_quote_stamped_before_the_horizon_reopens_a_refused_decision_for_its_symbol() -> None:
    t = LifecycleTracker()
    t.add(sig("A"))  # only the entry quote, an hour old at the horizon: refused
    assert t.on_time(H, "AAPL") == []
    assert t.on_time(H + 60 * S, "AAPL") == []  # the same quote: refused again (remembered)
    t.on_quote(replace(Q, bid=2.03, ask=2.07, ts_ns=H - 10 * S))  # arrives late, stamped before the horizon
    (a,) = t.on_time(H + 120 * S, "AAPL")  # the decision at the horizon, on the quote known then
    assert (a.exit_ns, a.exit_price) == (H, 2.03)


def test_a_new_signal_quoted_at_a_refused_horizon_reopens_that_decision() -> None:
    """A is refused at its horizon (only its hour-old entry quote). B opens on the same contract with
    a quote stamped exactly at A's horizon: A's decision is taken again on it (a quote not newer than
    the deadline) and sells at its bid, at the horizon."""
    t = LifecycleTracker()
    t.add(sig("A"))
    assert t.on_time(H) == []  # refused
    t.add(replace(sig("B"), created_ns=H, contract=replace(Q, bid=2.03, ask=2.07, ts_ns=H), horizon_ns=H + 3600 * S))
    (a,) = t.on_time(H + 60 * S)
    assert (a.id, a.exit_ns, a.exit_price) == ("A", H, 2.03)


def test_refused_signals_past_their_horizon_are_not_re_decided_on_a_newer_quote() -> None:
    """Ten signals refused at their horizon stay refused on any quote newer than it (a deadline
    decision never takes a quote from after the deadline), so a new signal on their contract, quoted
    after their horizon, makes the next pass look at none of them; the first quote after the
    horizon that reaches the tracker settles them (at its bid, stamped at its time)."""
    t = _Counting()
    for i in range(10):
        t.add(sig(f"A{i}"))
    assert t.on_time(H) == []  # all refused on the entry quote
    later = H + 600 * S
    t.add(replace(sig("B"), created_ns=later, contract=replace(Q, ts_ns=later), horizon_ns=later + 3600 * S))
    t.looked = 0
    assert t.on_time(later + 60 * S) == []
    assert t.looked == 0
    done = t.on_quote(replace(Q, bid=2.01, ask=2.05, ts_ns=later + 120 * S))
    assert sorted(s.id for s in done) == [f"A{i}" for i in range(10)]
    assert {(s.exit_ns, s.exit_price) for s in done} == {(later + 120 * S, 2.01)}


class _Counting(LifecycleTracker):
    """Counts the signals a pass looks at (each is asked whether it waits on a refused decision)."""

    looked = 0

    def _waits(self, sig: Signal, latest: OptionQuote | None) -> bool:
        self.looked += 1
        return super()._waits(sig, latest)


def test_a_pass_looks_only_at_the_signals_due_not_at_every_open_one() -> None:
    """500 signals refused at their horizon (their contracts' quotes went stale) wait for their
    expiry. A new signal on another contract, and a quote on that contract, must not make the next
    passes walk the 500 again: the pass at the new signal's horizon looks at it alone."""
    t = _Counting()
    for i in range(500):
        occ = f"AAPL  251017C{i:08d}"
        t.add(replace(sig(f"R{i:03d}"), contract=replace(Q, occ_symbol=occ)))
    assert t.on_time(H, "AAPL") == []  # all refused: their entry quotes are an hour old at the horizon
    t.looked = 0
    late = replace(Q, occ_symbol="AAPL  251017C99999999", ts_ns=H + 600 * S)
    t.add(replace(sig("N"), contract=late, created_ns=H + 600 * S, horizon_ns=H + 1200 * S))
    t.on_quote(replace(late, bid=2.0, ask=2.04, ts_ns=H + 1190 * S))
    assert t.on_time(H + 900 * S, "AAPL") == [] and t.looked == 0  # nothing due
    (n,) = t.on_time(H + 1200 * S, "AAPL")
    assert (n.id, n.exit_price, t.looked) == ("N", 2.0, 1)
