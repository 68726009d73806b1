"""The simulator's clock: market time runs only inside NYSE sessions (04:00-20:00 ET on session days).

Started while the market is in a session (pre-market, regular or post-market) the clock is *live*:
simulated time starts at the wall time. Started while the market is closed (night, weekend,
holiday) it *replays* the most recent session: the wall time of day is mapped onto that session
when it falls in its regular hours, else the replay starts at that session's open. At a session's end the clock
moves on to the next session's pre-market only once the wall clock has reached it; until then it
is *closed* and the source emits nothing. A clock with ``follow_wall=False`` (tests, benchmarks)
never waits: it runs from session to session as fast as it is advanced.

A *chosen* session (``ingestion.simulator_session``, ``aiots up --session``) ignores the wall clock:
the replay starts at that session's regular open (09:30 ET; its pre-market is skipped, as a replay
outside regular hours starts at the open) and then runs on, never waiting, through its post-market
and the following sessions (pre-market first) at the feed's speed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from aiots.core import conventions as cv

ClockMode = Literal["live", "replay", "closed"]


@dataclass(frozen=True)
class ClockStatus:
    """What the clock shows: mode, phase, the simulated instant and session, and a sentence."""

    mode: ClockMode
    phase: cv.Phase
    market_ns: int
    session: dt.date
    note: str


@dataclass(frozen=True)
class Tick:
    """One advance: simulated [start_ns, end_ns) inside one phase of ``session``."""

    start_ns: int
    end_ns: int
    phase: cv.Phase
    session: cv.Session
    new_session: bool


def _start(wall_ns: int, cal: cv.MarketCalendar) -> tuple[int, ClockMode, cv.Session]:
    phase = cal.phase(wall_ns)
    if phase != "closed":
        s = cal.session_of(wall_ns)
        assert s is not None
        return wall_ns, "live", s
    today = cv.ny_date(wall_ns)
    day = cal.session_on_or_before(today)
    assert day is not None
    s = cal.session(day)
    if s.pre_open_ns > wall_ns:  # today's session has not begun (before 04:00): the previous one
        prev = cal.session_before(day)
        assert prev is not None
        s = cal.session(prev)
    tod = wall_ns - cv.ny_midnight_ns(today)
    mapped = cv.ny_midnight_ns(s.date) + tod
    if not s.open_ns <= mapped < s.close_ns:  # outside regular hours: replay from the open
        mapped = s.open_ns
    return mapped, "replay", s


def describe_market(wall_ns: int, session: dt.date | None = None) -> str:
    """One line for banners: what the simulator does at ``wall_ns`` (live session, replay, or the
    chosen ``session``)."""
    return SessionClock(wall_ns, session=session).status(wall_ns).note


class SessionClock:
    """Simulated market time over the XNYS sessions (see the module docstring)."""

    def __init__(
        self,
        start_ns: int,
        *,
        follow_wall: bool = True,
        cal: cv.MarketCalendar | None = None,
        session: dt.date | None = None,
    ) -> None:
        self.cal = cal or cv.calendar()
        #: the session chosen by the user (replayed from its open, then on without waiting); None: none
        self.chosen = session
        self.follow_wall = follow_wall and session is None
        self.wall_start_ns = start_ns
        self.mode: ClockMode
        if session is not None:
            s = self.cal.session(session)  # NotASession (a ValueError) names the nearest sessions
            self.now_ns, self.mode, self.session = s.open_ns, "replay", s
        elif follow_wall:
            self.now_ns, self.mode, self.session = _start(start_ns, self.cal)
        else:
            day = self.cal.session_on_or_after(cv.ny_date(start_ns))
            assert day is not None
            s = self.cal.session(day)
            if start_ns >= s.post_close_ns:
                s = self.cal.session(self.cal.session_after(day))  # type: ignore[arg-type]
            start_ns = max(start_ns, s.pre_open_ns)
            self.now_ns, self.mode, self.session = start_ns, "live", s
        self.replayed = self.session.date if self.mode == "replay" else None
        self._entered = False  # the first tick reports new_session (chains, prev close, OI)

    def status(self, wall_ns: int | None = None) -> ClockStatus:
        phase = self.cal.phase(self.now_ns) if self.mode != "closed" else "closed"
        at = cv.ns_to_ny(self.now_ns).strftime("%H:%M ET")
        if self.chosen is not None:
            after = "" if self.session.date == self.chosen else f", after the chosen session {self.chosen.isoformat()}"
            note = (
                f"simulating session {self.session.date.isoformat()} ({at}, {phase}{after}; "
                "--session / ingestion.simulator_session)"
            )
        elif self.mode == "live":
            note = f"market {phase}: live session {self.session.date.isoformat()} ({at})"
        elif self.mode == "replay":
            wall = cv.ns_to_ny(wall_ns if wall_ns is not None else self.wall_start_ns)
            note = (
                f"market closed ({wall:%A %Y-%m-%d %H:%M} ET): simulating the last session "
                f"{self.session.date.isoformat()} ({at}, {phase})"
            )
        else:
            nxt = self.cal.session_after(self.session.date)
            when = cv.ns_to_ny(self.cal.session(nxt).pre_open_ns).strftime("%Y-%m-%d %H:%M ET") if nxt else "?"
            note = f"market closed after session {self.session.date.isoformat()}; next pre-market {when}"
        return ClockStatus(self.mode, phase, self.now_ns, self.session.date, note)

    def advance(self, seconds: float, wall_ns: int | None = None) -> Tick | None:
        """Up to ``seconds`` of market time, cut at the next phase boundary; None while closed."""
        s = self.session
        if self.now_ns >= s.post_close_ns:
            nxt_day = self.cal.session_after(s.date)
            if nxt_day is None:
                self.mode = "closed"
                return None
            nxt = self.cal.session(nxt_day)
            if self.follow_wall and (wall_ns is None or wall_ns < nxt.pre_open_ns):
                self.mode = "closed"
                return None
            self.session, s = nxt, nxt
            self.now_ns = nxt.pre_open_ns
            if self.follow_wall and wall_ns is not None and wall_ns > self.now_ns:
                self.now_ns = min(wall_ns, nxt.post_close_ns - cv.NS_PER_S)  # back on the wall clock
            self.mode = "replay" if self.chosen is not None else "live"
            self._entered = False
        t0 = self.now_ns
        phase = self.cal.phase(t0)
        bound = {"pre": s.open_ns, "regular": s.close_ns, "post": s.post_close_ns}.get(phase, s.post_close_ns)
        t1 = min(t0 + max(int(seconds * cv.NS_PER_S), 1), bound)
        self.now_ns = t1
        new = not self._entered
        self._entered = True
        return Tick(t0, t1, phase, s, new)
