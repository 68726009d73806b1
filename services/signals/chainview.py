"""A chain in columns: what contract selection and the ATM-IV scan read, without one Python object
per contract.

:class:`ChainView` holds the static columns (expiry, strike, right, quote time, size, open
interest, volume) as numpy arrays in the chain's order and gives prices through
:meth:`ChainView.bid_ask` for a set of rows, so a view may price its rows lazily (the backtest's
modelled chains price only the rows a decision reads). :meth:`ChainView.quote` materialises one
row as an :class:`OptionQuote` (the contract a signal carries).

:meth:`ChainView.from_quotes` wraps a list of quotes (the live chain book): the arrays are the
quotes' own fields, in the list's order, so every decision made on a view equals the one made on
the list.

A view laid out as a strike grid per expiry (the backtest's modelled chain) says so through
:meth:`ChainView.expiry_grid` and :meth:`ChainView.quote_ns`: the ATM-IV scan then reads the few
contracts at the spot straight from the grid (:mod:`aiots.services.signals.atm_iv`) instead of
scanning every row; the answer is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from aiots.core.conventions import ExerciseStyle, exercise_style
from aiots.services.signals.models import OptionQuote

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Rows = npt.NDArray[np.intp]
#: memo key of a whole expiry's ATM IV: (expiry ns, spot, time ns, rate, yield)
WholeExpiryKey = tuple[int, float, int, float, float]


class ExpiryGrid(NamedTuple):
    """All rows of one expiry as a strike grid: ``strikes`` ascending (dollars), the call at
    ``strikes[i]`` is row ``call0 + i`` and the put row ``put0 + i``, every call's row before every
    put's (``put0 >= call0 + len(strikes)``, as in OCC order); ``occ`` gives the OCC symbol of any
    of these rows."""

    strikes: list[float]
    call0: int
    put0: int
    occ: Callable[[int], str]


class QuoteModel(NamedTuple):
    """How a modelled view quotes its **calls**, for a view whose calls the core prices one row at a
    time whatever the batch (American calls with no dividend yield: never exercised early): each at
    the Black-Scholes value at ``iv`` (spot, rate, no yield) held at intrinsic, quoted ``-+`` the
    half-spread ``max(half_spread_frac x price, min_half_spread)`` rounded outward to ``tick``."""

    spot: float
    rate: float
    iv: float
    half_spread_frac: float
    min_half_spread: float
    tick: float


class ChainView:
    """Columns of one underlying's chain (dollars per share; times ns UTC)."""

    def __init__(
        self,
        expiry_ns: I64,
        strike: F64,
        is_call: npt.NDArray[np.bool_],
        ts_ns: I64,
        ask_size: F64,
        open_interest: F64,
        volume: F64,
        multiplier: I64,
    ) -> None:
        self.expiry_ns = expiry_ns
        self.strike = strike
        self.is_call = is_call
        self.ts_ns = ts_ns
        self.ask_size = ask_size
        self.open_interest = open_interest
        self.volume = volume
        self.multiplier = multiplier
        self._expiry_index: tuple[list[int], I64] | None = None
        #: ATM IV per (expiry, spot, time, rate, yield, rows) already found on this view (None: none)
        self.atm_memo: dict[tuple[int, float, int, float, float, bytes], float | None] = {}
        #: the same for a whole expiry of a grid view (:meth:`expiry_grid`), keyed without the rows
        self.grid_memo: dict[WholeExpiryKey, float | None] = {}

    def __len__(self) -> int:
        return len(self.strike)

    # --- the part a subclass provides ---------------------------------------------------------
    def bid_ask(self, rows: Rows) -> tuple[F64, F64]:
        """(bid, ask) of ``rows`` (0 on a side = not quoted)."""
        raise NotImplementedError

    def occ(self, i: int) -> str:
        """The OCC symbol of row ``i``."""
        raise NotImplementedError

    def quote(self, i: int) -> OptionQuote:
        """Row ``i`` as a quote."""
        raise NotImplementedError

    def styles(self, rows: Rows) -> list[ExerciseStyle]:
        """The exercise style of each of ``rows`` (from its OCC root)."""
        return [exercise_style(self.occ(int(i))) for i in rows]

    # --- what a grid-shaped view may add (the defaults say "not known": scan the rows) ---------
    def quote_ns(self) -> int | None:
        """The quote time (ns) of every row when they all share one, else None."""
        return None

    def expiry_list(self) -> list[int]:
        """The distinct expiries in ns, oldest first (``expiry_index()[0]``)."""
        return self.expiry_index()[0]

    def expiry_grid(self, code: int) -> ExpiryGrid | None:
        """The rows of expiry ``expiry_list()[code]`` as a strike grid, or None when not laid out so."""
        return None

    def quote_model(self) -> QuoteModel | None:
        """How the view quotes its calls, when it is such a model (None: quotes as they come)."""
        return None

    def defer_batch(self, rows: Rows) -> None:
        """Price ``rows`` as one batch (a lazy view may defer it, each row priced as that batch would
        have when it is read; here: now)."""
        self.bid_ask(rows)

    def priced(self, rows: Rows) -> npt.NDArray[np.bool_]:
        """Which of ``rows`` are priced already: reading them prices nothing and changes no batch (a
        lazy view prices a row when it is read; here every row is quoted)."""
        return np.ones(len(rows), dtype=np.bool_)

    def quote_columns(self) -> tuple[F64, F64] | None:
        """(bid, ask) of every row when the view holds them already (reading them prices nothing);
        None for a view that prices rows when they are read (read :meth:`bid_ask` of the rows)."""
        return None

    def liquid_rows(self, want_call: bool, min_open_interest: float, min_volume: float) -> Rows | None:
        """The rows of the wanted right with open interest and volume at least these and no known ask
        size below the minimum, ascending (read-only), when the view knows them without a scan of
        its columns (None: scan them)."""
        return None

    def atm_pair(
        self, grid: ExpiryGrid, i: int, spot: float, years: float, r: float, q: float
    ) -> tuple[float, float, float, float, float, float] | None:
        """For a grid view: (bid, ask) of the call and of the put at ``grid.strikes[i]`` and the
        European IV of each mid at (``spot``, that strike, ``years``, ``r``, ``q``) when both are
        two-sided (else NaN IVs), as :meth:`bid_ask_list` of the pair and ``implied_vol`` of the
        mids would give them, in one step; None when the view has no such shortcut (read the rows)."""
        return None

    def bid_ask_list(self, rows: list[int]) -> tuple[list[float], list[float]]:
        """:meth:`bid_ask` of ``rows`` (one call, so a lazy view prices them as one batch), as lists."""
        bid, ask = self.bid_ask(np.array(rows, dtype=np.intp))
        return bid.tolist(), ask.tolist()

    # --- shared helpers ------------------------------------------------------------------------
    def expiry_index(self) -> tuple[list[int], I64]:
        """(the distinct expiries in ns, oldest first; each row's position in that list), cached."""
        if self._expiry_index is None:
            self._expiry_index = expiry_codes(self.expiry_ns)
        return self._expiry_index

    def two_sided(self, rows: Rows) -> npt.NDArray[np.bool_]:
        """Both sides quoted and not crossed (as :attr:`OptionQuote.two_sided`)."""
        bid, ask = self.bid_ask(rows)
        return (bid > 0.0) & (ask >= bid)

    @staticmethod
    def from_quotes(quotes: Sequence[OptionQuote]) -> QuoteListView:
        return QuoteListView(quotes)


class ContractColumns(NamedTuple):
    """The columns of a list of quotes that name the contracts (read-only arrays, the list's order):
    what a live chain's views share while its set of contracts is unchanged."""

    expiry_ns: I64
    strike: F64
    is_call: npt.NDArray[np.bool_]
    multiplier: I64
    expiry_index: tuple[list[int], I64]

    @staticmethod
    def of(quotes: Sequence[OptionQuote]) -> ContractColumns:
        expiry = np.array([q.expiry_ns for q in quotes], dtype=np.int64)
        cols = (
            expiry,
            np.array([q.strike for q in quotes], dtype=np.float64),
            np.array([q.is_call for q in quotes], dtype=np.bool_),
            np.array([q.multiplier for q in quotes], dtype=np.int64),
        )
        index = expiry_codes(expiry)
        for a in (*cols, index[1]):
            a.flags.writeable = False  # shared by every view of the chain until a contract changes
        return ContractColumns(*cols, index)


class QuoteListView(ChainView):
    """A view of a list of quotes (prices known). ``contracts``: the list's contract columns when
    known (a live chain's, unchanged since it was built); else built here."""

    def __init__(self, quotes: Sequence[OptionQuote], contracts: ContractColumns | None = None) -> None:
        self.quotes = list(quotes)
        qs = self.quotes
        c = ContractColumns.of(qs) if contracts is None else contracts
        super().__init__(
            c.expiry_ns,
            c.strike,
            c.is_call,
            np.array([q.ts_ns for q in qs], dtype=np.int64),
            np.array([q.ask_size for q in qs], dtype=np.float64),
            np.array([q.open_interest for q in qs], dtype=np.float64),
            np.array([q.volume for q in qs], dtype=np.float64),
            c.multiplier,
        )
        self._expiry_index = c.expiry_index
        self._bid = np.array([q.bid for q in qs], dtype=np.float64)
        self._ask = np.array([q.ask for q in qs], dtype=np.float64)

    def bid_ask(self, rows: Rows) -> tuple[F64, F64]:
        return self._bid[rows], self._ask[rows]

    def quote_columns(self) -> tuple[F64, F64]:
        return self._bid, self._ask

    def occ(self, i: int) -> str:
        return self.quotes[i].occ_symbol

    def quote(self, i: int) -> OptionQuote:
        return self.quotes[i]


def expiry_codes(expiry_ns: I64) -> tuple[list[int], I64]:
    """``np.unique(expiry_ns, return_inverse=True)`` as (a list of ints, int64 codes), 2-6x faster on
    a chain's few distinct expiries (a sort, a run mask and a bisection; one expiry: no bisection)."""
    if not len(expiry_ns):
        return [], np.zeros(0, dtype=np.int64)
    s = np.sort(expiry_ns)
    if s[0] == s[-1]:
        return [int(s[0])], np.zeros(len(s), dtype=np.int64)
    head = np.empty(len(s), dtype=np.bool_)
    head[0] = True
    np.not_equal(s[1:], s[:-1], out=head[1:])
    uniq = s[head]
    return uniq.tolist(), np.searchsorted(uniq, expiry_ns).astype(np.int64)


def as_view(chain: ChainView | Sequence[OptionQuote]) -> ChainView:
    """``chain`` itself when it is a view, else a view of the list."""
    return chain if isinstance(chain, ChainView) else QuoteListView(chain)
