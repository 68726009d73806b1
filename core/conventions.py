"""Market conventions: the one home of the facts every part shares.

- Time: int64 nanoseconds UTC inside the data path; ``NY`` (America/New_York) for the market.
- Calendar: the NYSE (XNYS) sessions, holidays and early closes from ``exchange-calendars``;
  regular hours 09:30-16:00 ET (13:00 on early closes), pre-market from 04:00, post-market to 20:00.
- Expiry: an option expires at its expiry session's close (16:00 ET, or the early close); a listed
  expiry that falls on a holiday moves to the previous session.
- Identity: tickers upper-case (``TICKER_RULE``); options the 21-character OCC symbol.
- Exercise: index roots (SPX, SPXW, XSP, NDX, RUT, VIX and the like) are European and cash-settled;
  US equities and ETFs are American.
- Rates: ``DEFAULT_RATE`` is continuously compounded; years are ACT/365 (``NS_PER_YEAR``).

Size: one module on purpose: an ast test fails when a market fact is defined anywhere else, and the
calendar, expiries and OCC rules read each other; the session cache of ``session_of`` sits beside it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

# --- time -------------------------------------------------------------------------------------
NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 3_600 * NS_PER_S
NS_PER_DAY = 86_400 * NS_PER_S
NS_PER_YEAR = 365 * NS_PER_DAY  # ACT/365
MINUTES_PER_REGULAR_SESSION = 390
SESSIONS_PER_YEAR = 252

UTC = dt.UTC
NY = ZoneInfo("America/New_York")

REGULAR_OPEN = dt.time(9, 30)
REGULAR_CLOSE = dt.time(16, 0)
PRE_MARKET_OPEN = dt.time(4, 0)
POST_MARKET_CLOSE = dt.time(20, 0)

# Timestamps the API accepts: 1970-01-01 .. 2199-12-31 (int64 ns covers 1677-2262).
TIMESTAMP_MIN_NS = 0
TIMESTAMP_MAX_NS = int(dt.datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S - 1

DEFAULT_RATE = 0.045  # continuously compounded risk-free rate when none is configured
CONTRACT_MULTIPLIER = 100  # shares per US equity/index option contract

#: int64 bounds standing for "before / after every session" in the calendar's scalar lookups
_NS_BELOW_ALL = int(np.iinfo(np.int64).min)
_NS_ABOVE_ALL = int(np.iinfo(np.int64).max)

Phase = Literal["pre", "regular", "post", "closed"]
ExerciseStyle = Literal["european", "american"]


def datetime_to_ns(value: dt.datetime) -> int:
    """Aware datetime -> int64 ns UTC (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * NS_PER_US


def ns_to_datetime(ns: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    """int64 ns UTC -> aware datetime in ``tz`` (microsecond precision)."""
    base = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=int(ns) // NS_PER_US)
    return base.astimezone(tz)


def ns_to_ny(ns: int) -> dt.datetime:
    """int64 ns UTC -> aware America/New_York datetime."""
    return ns_to_datetime(ns, NY)


#: ny_date's latest answer: [midnight, next midnight) in ns and that date (one tuple, replaced whole)
_ny_day_hit: tuple[int, int, dt.date] = (0, 0, dt.date.min)


def ny_date(ns: int) -> dt.date:
    """The America/New_York calendar date of ``ns`` (the latest answer is reused while ``ns`` stays
    in that day: replays and the backtest ask about every bar)."""
    global _ny_day_hit
    lo, hi, d = _ny_day_hit
    if lo <= ns < hi:
        return d
    d = ns_to_ny(ns).date()
    _ny_day_hit = (ny_midnight_ns(d), ny_midnight_ns(d + dt.timedelta(days=1)), d)
    return d


def ny_ns(day: dt.date, at: dt.time) -> int:
    """``day`` at wall time ``at`` in New York, as int64 ns UTC."""
    return datetime_to_ns(dt.datetime.combine(day, at, tzinfo=NY))


def ny_midnight_ns(day: dt.date) -> int:
    """00:00 America/New_York on ``day`` as int64 ns UTC."""
    return ny_ns(day, dt.time(0, 0))


def rfc3339(ns: int, tz: dt.tzinfo = NY) -> str:
    """RFC 3339 text with offset, e.g. ``2026-03-02T09:31:00-05:00``."""
    return ns_to_datetime(ns, tz).isoformat()


def ns_to_pb(ns: int) -> Timestamp:
    """int64 ns UTC -> ``google.protobuf.Timestamp``."""
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=int(ns) // NS_PER_S, nanos=int(ns) % NS_PER_S)


def pb_to_ns(ts: Timestamp) -> int:
    """``google.protobuf.Timestamp`` -> int64 ns UTC."""
    return int(ts.seconds) * NS_PER_S + int(ts.nanos)


def as_date(value: dt.date | str) -> dt.date:
    """A date from a ``date`` or an ISO ``YYYY-MM-DD`` string (ValueError otherwise)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value.strip())
    raise ValueError(f"expected a date or 'YYYY-MM-DD', got {value!r}")


# --- calendar ---------------------------------------------------------------------------------
class NotASession(ValueError):
    """A date on which the exchange has no session; names the nearest sessions."""

    def __init__(self, day: dt.date, before: dt.date | None, after: dt.date | None) -> None:
        self.day, self.before, self.after = day, before, after
        near = ", ".join(f"{label} {d.isoformat()}" for label, d in (("previous", before), ("next", after)) if d)
        super().__init__(f"{day.isoformat()} is not an NYSE session (nearest: {near or 'none'})")


class Session(NamedTuple):
    """One NYSE session: its date, regular open/close (ns UTC) and whether it closes early."""

    date: dt.date
    open_ns: int
    close_ns: int
    early_close: bool

    @property
    def pre_open_ns(self) -> int:
        return ny_ns(self.date, PRE_MARKET_OPEN)

    @property
    def post_close_ns(self) -> int:
        return ny_ns(self.date, POST_MARKET_CLOSE)


@dataclass(frozen=True)
class _Table:
    dates: list[dt.date]
    ordinals: npt.NDArray[np.int64]
    opens: npt.NDArray[np.int64]
    closes: npt.NDArray[np.int64]


class MarketCalendar:
    """The XNYS calendar (from ``exchange-calendars``) as fast lookups on ns timestamps and dates.

    The table spans 2000-01-01 to five years past today; holidays ahead are the rule-based ones
    exchange-calendars projects (ad-hoc closures are only known once announced).
    """

    def __init__(self, start: dt.date | None = None, end: dt.date | None = None) -> None:
        import exchange_calendars as xcals

        start = start or dt.date(2000, 1, 3)
        end = end or dt.date(dt.date.today().year + 5, 12, 31)
        cal = xcals.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
        sched = cal.schedule
        dates = [ts.date() for ts in sched.index]
        opens = np.asarray(sched["open"].astype("int64").to_numpy(), dtype=np.int64)
        closes = np.asarray(sched["close"].astype("int64").to_numpy(), dtype=np.int64)
        ordinals = np.asarray([d.toordinal() for d in dates], dtype=np.int64)
        self._t = _Table(dates, ordinals, opens, closes)
        self.first = dates[0]
        self.last = dates[-1]
        # the latest answers, reused while the time stays in the same New York day / between the
        # same two regular opens (a replay asks about every bar; one tuple, replaced whole)
        self._day_hit: tuple[int, int, Session | None] = (0, 0, None)  # [midnight, next midnight)
        self._open_hit: tuple[int, int, int] = (0, 0, 0)  # [an open, the next open), that open's close
        # regular_ns_between's scalar lookups: the bounds as Python ints (bisect beats a numpy
        # searchsorted on one value), the running total of regular ns before each session, and the
        # latest session its start fell in: (previous close, close, open, close, next open)
        self._opens_l: list[int] = opens.tolist()
        self._closes_l: list[int] = closes.tolist()
        self._regular_before: list[int] = [0, *np.cumsum(closes - opens).tolist()]
        self._between_hit: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    # dates
    def _index(self, day: dt.date) -> int:
        """Index of the first session on or after ``day``."""
        return bisect.bisect_left(self._t.dates, day)

    def is_session(self, day: dt.date | str) -> bool:
        d = as_date(day)
        i = self._index(d)
        return i < len(self._t.dates) and self._t.dates[i] == d

    def session(self, day: dt.date | str) -> Session:
        """The session on ``day``; :class:`NotASession` (naming the nearest) otherwise."""
        d = as_date(day)
        i = self._index(d)
        if i < len(self._t.dates) and self._t.dates[i] == d:
            return self._row(i)
        raise NotASession(d, self.session_before(d), self.session_after(d))

    def _row(self, i: int) -> Session:
        t = self._t
        close = int(t.closes[i])
        return Session(t.dates[i], int(t.opens[i]), close, close < ny_ns(t.dates[i], REGULAR_CLOSE))

    def session_before(self, day: dt.date | str) -> dt.date | None:
        """The last session strictly before ``day``."""
        i = self._index(as_date(day)) - 1
        return self._t.dates[i] if i >= 0 else None

    def session_after(self, day: dt.date | str) -> dt.date | None:
        """The first session strictly after ``day``."""
        d = as_date(day)
        i = bisect.bisect_right(self._t.dates, d)
        return self._t.dates[i] if i < len(self._t.dates) else None

    def session_on_or_before(self, day: dt.date | str) -> dt.date | None:
        d = as_date(day)
        return d if self.is_session(d) else self.session_before(d)

    def session_on_or_after(self, day: dt.date | str) -> dt.date | None:
        d = as_date(day)
        return d if self.is_session(d) else self.session_after(d)

    def sessions_between(self, start: dt.date | str, end: dt.date | str) -> list[dt.date]:
        """Sessions in [start, end], oldest first."""
        a, b = as_date(start), as_date(end)
        return self._t.dates[self._index(a) : bisect.bisect_right(self._t.dates, b)]

    def previous_sessions(self, day: dt.date | str, n: int) -> list[dt.date]:
        """The ``n`` sessions strictly before ``day``, oldest first."""
        i = self._index(as_date(day))
        return self._t.dates[max(0, i - n) : i]

    # instants
    def session_of(self, ts_ns: int) -> Session | None:
        """The session whose trading day (04:00-20:00 ET) contains ``ts_ns``; None on a closed day."""
        lo, hi, hit = self._day_hit
        if lo <= ts_ns < hi:
            return hit
        d = ny_date(ts_ns)
        hit = self._row(self._index(d)) if self.is_session(d) else None
        self._day_hit = (ny_midnight_ns(d), ny_midnight_ns(d + dt.timedelta(days=1)), hit)
        return hit

    def phase(self, ts_ns: int) -> Phase:
        """'pre' (04:00-open), 'regular' (open-close), 'post' (close-20:00) or 'closed'."""
        s = self.session_of(ts_ns)
        if s is None:
            return "closed"
        if s.open_ns <= ts_ns < s.close_ns:
            return "regular"
        if s.pre_open_ns <= ts_ns < s.open_ns:
            return "pre"
        if s.close_ns <= ts_ns < s.post_close_ns:
            return "post"
        return "closed"

    def is_regular_hours(self, ts_ns: int) -> bool:
        """True within a session's regular hours [open, close)."""
        lo, hi, close = self._open_hit
        if lo <= ts_ns < hi:
            return ts_ns < close
        t = self._t
        o = int(np.searchsorted(t.opens, ts_ns, side="right")) - 1
        if o < 0:
            return False
        nxt = int(t.opens[o + 1]) if o + 1 < len(t.opens) else TIMESTAMP_MAX_NS + 1
        self._open_hit = (int(t.opens[o]), nxt, int(t.closes[o]))
        return ts_ns < int(t.closes[o])

    def regular_hours_mask(self, ts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """:meth:`is_regular_hours` of each of ``ts_ns`` (ns UTC), in columns."""
        t = self._t
        o = np.searchsorted(t.opens, ts_ns, side="right") - 1
        ok = o >= 0
        regular = np.zeros(len(ts_ns), dtype=np.bool_)
        regular[ok] = ts_ns[ok] < t.closes[o[ok]]
        return regular

    def last_regular_close_at_or_before(self, ts_ns: int) -> int | None:
        """The latest regular close (ns) at or before ``ts_ns``."""
        i = int(np.searchsorted(self._t.closes, ts_ns, side="right")) - 1
        return int(self._t.closes[i]) if i >= 0 else None

    def previous_close_ns(self, ts_ns: int) -> int | None:
        """The close of the last session that ended before the session containing ``ts_ns``.

        During a session (any phase) this is the prior session's close; on a closed day it is the
        latest close before ``ts_ns``.
        """
        s = self.session_of(ts_ns)
        if s is None:
            return self.last_regular_close_at_or_before(ts_ns)
        prev = self.session_before(s.date)
        return self.session(prev).close_ns if prev else None

    def regular_ns_between(self, start_ns: int, end_ns: int) -> int:
        """Nanoseconds of regular trading hours in [start_ns, end_ns) (0 when end <= start).

        Fast path: the session the start falls in (the first close after it) is kept, and when the
        end comes no later than the next session's open only that session can overlap the span (a
        selection's horizon clipped before the close). Otherwise whole sessions come from a running
        total and only the first and last are clipped.
        """
        start_ns, end_ns = int(start_ns), int(end_ns)
        if end_ns <= start_ns:
            return 0
        lo, hi, open_ns, close_ns, next_open = self._between_hit
        if not lo <= start_ns < hi:
            lo, hi, open_ns, close_ns, next_open = self._between_hit = self._span_of(start_ns)
        if end_ns <= next_open:
            return max(0, min(close_ns, end_ns) - max(open_ns, start_ns))
        opens, closes = self._opens_l, self._closes_l
        i0 = bisect.bisect_right(closes, start_ns)  # the first session closing after the start
        i1 = bisect.bisect_left(opens, end_ns)  # one past the last session opening before the end
        if i1 - i0 <= 1:
            return max(0, min(closes[i0], end_ns) - max(opens[i0], start_ns)) if i1 > i0 else 0
        # i1 - i0 >= 2: session i0 ends before the end and session i1 - 1 opens after the start
        first = closes[i0] - max(opens[i0], start_ns)
        last = min(closes[i1 - 1], end_ns) - opens[i1 - 1]
        return first + self._regular_before[i1 - 1] - self._regular_before[i0 + 1] + last

    def _span_of(self, ts_ns: int) -> tuple[int, int, int, int, int]:
        """[previous close, close) of the first session closing after ``ts_ns``, that session's
        open and close, and the next session's open (int64 bounds past either end of the table)."""
        opens, closes = self._opens_l, self._closes_l
        i = bisect.bisect_right(closes, ts_ns)
        lo = closes[i - 1] if i > 0 else _NS_BELOW_ALL
        if i == len(closes):  # past the last session: no regular time from here on
            return (lo, _NS_ABOVE_ALL, _NS_ABOVE_ALL, _NS_ABOVE_ALL, _NS_ABOVE_ALL)
        nxt = opens[i + 1] if i + 1 < len(opens) else _NS_ABOVE_ALL
        return (lo, closes[i], opens[i], closes[i], nxt)

    def trading_years(self, start_ns: int, end_ns: int, overnight_minutes: float = 0.0) -> float:
        """Trading time from ``start_ns`` to ``end_ns`` in years of 252 sessions x 390 minutes.

        Each session boundary crossed adds ``overnight_minutes`` of equivalent variance (0 = none).
        """
        if end_ns <= start_ns:
            return 0.0
        minutes = self.regular_ns_between(start_ns, end_ns) / NS_PER_MIN
        if overnight_minutes > 0:
            opens = self._opens_l
            crossings = bisect.bisect_left(opens, end_ns) - bisect.bisect_right(opens, start_ns)
            minutes += max(crossings, 0) * overnight_minutes
        return minutes / (MINUTES_PER_REGULAR_SESSION * SESSIONS_PER_YEAR)


@functools.lru_cache(maxsize=1)
def calendar() -> MarketCalendar:
    """The process-wide XNYS calendar (built once, ~0.5 s)."""
    return MarketCalendar()


# --- expiries ---------------------------------------------------------------------------------
DAILY_EXPIRY_ROOTS = frozenset({"SPY", "QQQ", "IWM", "SPXW", "XSP", "NDXP", "RUTW"})
MONTHLY_ONLY_ROOTS = frozenset({"SPX", "NDX", "RUT", "VIX"})


def expiry_ns(expiry: dt.date | str) -> int:
    """The expiry instant: the close of the expiry session (16:00 ET, or 13:00 on an early close).

    A date that is not a session (data can carry one) expires at 16:00 ET that day.
    """
    d = as_date(expiry)
    cal = calendar()
    if cal.is_session(d):
        return cal.session(d).close_ns
    return ny_ns(d, REGULAR_CLOSE)


def time_to_expiry_years(now_ns: int, expiry: dt.date | str) -> float:
    """Calendar years (ACT/365) from ``now_ns`` to the expiry instant; negative once expired."""
    return (expiry_ns(expiry) - now_ns) / NS_PER_YEAR


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of ``year``-``month`` (the standard monthly expiration day)."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(root: str, start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Expiry dates listed for ``root`` in [start, end], following the real schedule.

    Monthlies on the third Friday; weeklies on every Friday (all roots but the monthly-only index
    roots); daily expiries Monday-Friday for SPY, QQQ, IWM and the PM-settled index roots. An
    expiry that falls on a holiday moves to the previous session.
    """
    a, b = as_date(start), as_date(end)
    cal = calendar()
    r = root.strip().upper()
    out: set[dt.date] = set()
    d = a - dt.timedelta(days=7)  # a moved Friday may land inside [a, b]
    while d <= b + dt.timedelta(days=7):
        listed = False
        if r in DAILY_EXPIRY_ROOTS:
            listed = d.weekday() < 5
        elif r in MONTHLY_ONLY_ROOTS:
            listed = d == third_friday(d.year, d.month)
        else:
            listed = d.weekday() == 4
        if listed:
            s = cal.session_on_or_before(d)
            if s is not None and a <= s <= b and (s == d or r not in DAILY_EXPIRY_ROOTS):
                out.add(s)
        d += dt.timedelta(days=1)
    return sorted(out)


def is_weekly_expiry(day: dt.date | str) -> bool:
    """True when ``day`` is a Friday session, or the session a Friday holiday moves the expiry to."""
    d = as_date(day)
    cal = calendar()
    friday = d + dt.timedelta(days=(4 - d.weekday()) % 7)
    return cal.is_session(d) and (d == friday or (not cal.is_session(friday) and cal.session_before(friday) == d))


def is_monthly_expiry(day: dt.date | str) -> bool:
    """True when ``day`` is the (possibly holiday-moved) third-Friday expiry of its month."""
    d = as_date(day)
    tf = third_friday(d.year, d.month)
    return d == (calendar().session_on_or_before(tf) or tf)


# --- identity ---------------------------------------------------------------------------------
TICKER_RULE = "1-10 characters: A-Z, 0-9, '.' or '-', starting with a letter or digit"
_TICKER_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")
OCC_RE = re.compile(r"^([A-Z0-9.]{1,6})\s*(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
OCC_RULE = "21 characters: root padded to 6, YYMMDD, C or P, strike x 1000 in 8 digits (e.g. 'AAPL  250117C00150000')"


class InvalidSymbol(ValueError):
    """A ticker or OCC symbol that breaks the rule; ``field`` names the request field."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field, self.value, self.rule = field, value, rule
        super().__init__(f"{field}: {value!r} is not valid ({rule})")


def normalize_ticker(value: object, field: str = "symbol") -> str:
    """Upper-cased, stripped ticker; :class:`InvalidSymbol` when it breaks ``TICKER_RULE``."""
    if not isinstance(value, str):
        raise InvalidSymbol(field, value, TICKER_RULE)
    t = value.strip().upper()
    if not _TICKER_RE.match(t):
        raise InvalidSymbol(field, value, TICKER_RULE)
    return t


def is_ticker(value: object) -> bool:
    return isinstance(value, str) and _TICKER_RE.match(value) is not None


class OccSymbol(NamedTuple):
    """A parsed OCC option symbol; strike in dollars, right 'C' or 'P'."""

    root: str
    expiry: dt.date
    right: str
    strike: float

    @property
    def underlying(self) -> str:
        return underlying_of_root(self.root)

    @property
    def symbol(self) -> str:
        return format_occ(self.root, self.expiry, self.right, self.strike)


def parse_occ(symbol: object, field: str = "contract") -> OccSymbol:
    """Parse an OCC symbol (padding optional); :class:`InvalidSymbol` on malformed input."""
    m = OCC_RE.match(symbol.strip().upper()) if isinstance(symbol, str) else None
    if m is None:
        raise InvalidSymbol(field, symbol, OCC_RULE)
    root, yy, mm, dd, right, strike = m.groups()
    try:
        expiry = dt.date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise InvalidSymbol(field, symbol, f"a real date in YYMMDD; {OCC_RULE}") from None
    return OccSymbol(root, expiry, right, int(strike) / 1000.0)


def format_occ(root: str, expiry: dt.date | str, right: str, strike: float) -> str:
    """21-character OCC symbol: root padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits."""
    r0 = root.strip().upper()
    if not re.fullmatch(r"[A-Z0-9.]{1,6}", r0):
        raise ValueError(f"underlying must be 1-6 characters A-Z0-9., got {root!r}")
    e = as_date(expiry)
    if not 2000 <= e.year <= 2099:
        raise ValueError(f"expiry year must be in 2000-2099, got {e}")
    side = right.strip().upper()[:1] if isinstance(right, str) else ""
    if side not in ("C", "P"):
        raise ValueError(f"right must be 'C'/'P' (or call/put), got {right!r}")
    milli = round(float(strike) * 1000)
    if not (math.isfinite(strike) and 0 < milli < 100_000_000 and abs(float(strike) * 1000 - milli) < 1e-6):
        raise ValueError(f"strike must be positive, below 100000 and a multiple of 0.001, got {strike!r}")
    return f"{r0:<6}{e:%y%m%d}{side}{milli:08d}"


# --- exercise style ---------------------------------------------------------------------------
EUROPEAN_ROOTS = frozenset(
    {"SPX", "SPXW", "SPXPM", "XSP", "NDX", "NDXP", "RUT", "RUTW", "MRUT", "VIX", "VIXW", "DJX", "XEO", "XND"}
)
_ROOT_UNDERLYING = {"SPXW": "SPX", "SPXPM": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX", "XEO": "OEX"}


def exercise_style(root_or_occ: str) -> ExerciseStyle:
    """'european' for cash-settled index roots (SPX, SPXW, XSP, NDX, RUT, VIX, ...), else 'american'."""
    s = root_or_occ.strip().upper()
    root = OCC_RE.match(s).group(1) if len(s) >= 15 and OCC_RE.match(s) else s  # type: ignore[union-attr]
    return "european" if root in EUROPEAN_ROOTS else "american"


def is_cash_settled(root: str) -> bool:
    """Index options settle in cash; equity and ETF options deliver shares."""
    return root.strip().upper() in EUROPEAN_ROOTS


def underlying_of_root(root: str) -> str:
    """The underlying an option root is written on (SPXW -> SPX); the root itself otherwise."""
    r = root.strip().upper()
    return _ROOT_UNDERLYING.get(r, r)


# --- volatility statistics --------------------------------------------------------------------
def iv_rank(current: float, history: npt.ArrayLike) -> float:
    """IV rank 0..100: (current - min) / (max - min) over ``history`` (NaN when flat or empty)."""
    h = np.asarray(history, dtype=np.float64)
    h = h[np.isfinite(h)]
    if h.size == 0 or not math.isfinite(current):
        return math.nan
    lo, hi = float(h.min()), float(h.max())
    if hi <= lo:
        return math.nan
    return float(min(max((current - lo) / (hi - lo) * 100.0, 0.0), 100.0))


def iv_percentile(current: float, history: npt.ArrayLike) -> float:
    """IV percentile 0..100: the share of ``history`` strictly below ``current`` (NaN when empty)."""
    h = np.asarray(history, dtype=np.float64)
    h = h[np.isfinite(h)]
    if h.size == 0 or not math.isfinite(current):
        return math.nan
    return float(np.mean(h < current) * 100.0)
