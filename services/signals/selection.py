"""Contract selection: which option expresses an :class:`Idea`, with executable levels.

For each candidate (calls for bullish ideas, puts for bearish) inside the DTE window with enough
open interest and volume, a fresh two-sided uncrossed quote (age within the execution model's
limit), enough size on the ask and a tight enough spread:

1. IV from the mid with the core's solver for the contract's exercise style (from its root:
   European for SPX/SPXW/XSP/..., American otherwise); Greeks are closed-form BSM Greeks at that
   IV with the symbol's dividend yield, in trader units. |delta| must sit in the band.
2. Time is trading time: the horizon (already clipped before the session's close) is measured in
   session minutes, theta is charged per trading day (a year of 252 sessions), and the
   probabilities use sigma * sqrt(trading years).
3. Executable levels (dollars per share): entry at the **ask**; target and stop are prices of the
   **bid**, where a long holder sells. The target returns ``t`` % after fees on both legs, with
   t = clamp(target_capture x the net return of the projected move, 5 %, 10 %). The stop sits at least
   ``stop_spread_mult`` spreads and ``stop_noise_mult`` option-noise units (the underlying's ATR
   over ``noise_bars`` bars through delta and gamma) below the entry.
4. p_model: the probability that the underlying (lognormal at the contract's IV, drifting by the
   strategy's projected move over the horizon) reaches the level where the bid hits the target
   before the level where it hits the stop, times the probability of reaching it within the
   horizon (first passage with drift). Confidence is the calibrated probability
   (:mod:`aiots.services.signals.calibration`) from p_model and the strategy's evidence: the
   calibration, fitted walk-forward on backtest outcomes, is what tempers the strategy's claim.
5. Expected value after costs must be positive (``min_expected_value_pct``): the target at the
   calibrated probability, the stop at the model's share of the rest (first passage to the stop
   level), otherwise the horizon exit valued with no move (the bid after theta, less the costs);
   the net reward:risk must reach ``min_reward_risk`` and the loss at the stop ``max_stop_pct``.
   The contract is chosen by its expected value at the uncalibrated ``p_model`` (how the
   calibration's candidate outcomes were chosen) and only that contract is gated.
6. Event risk: when the front expiry's ATM IV is ``event_iv_ratio`` x the next one's (an earnings
   week), buying premium pays the IV crush: the idea is skipped.

Deterministic: candidates are ranked by (expected value, -spread, OCC symbol).

Cost: the American IV solve is skipped for contracts whose projected gain provably can't pay
``spread_cover`` half-spreads at any IV the solver could return
(:mod:`aiots.services.signals.gain_bound`; ~86 % of the solves on modelled SPY chains), so the
decision is that of solving every candidate; its numbers are too, except that the chosen contract's
Greeks can differ by an ulp (fewer rows reach the core's vectorised Greeks, see below: found on a
modelled chain in session 5; the four reference backtests are unchanged). ``tests/unit/signals/
test_selection_fast.py`` holds the selection as it was before against this one. On a modelled chain
(a view with a :class:`~aiots.services.signals.chainview.QuoteModel`) an idea whose calls (puts)
are all provably dropped or unable to pay (:mod:`aiots.services.signals.model_prune`) is refused
without pricing them, after one witness contract shows the earlier checks pass (same answer, same
quotes: such calls are priced one row at a time whatever the batch; the puts' batch is deferred,
each put priced with its block of it when read). Batches matter to
the last bit: the core's vectorised Greeks (and its Bjerksund-Stensland prices) of a row differ by
an ulp between the SIMD body and the scalar tail of a call, so which rows go into one call is part
of the behaviour (a modelled chain priced or solved in other batches gives other last bits).

On a view that holds its quotes (a live chain, real quotes in a backtest), the first cut (fresh,
liquid, of the idea's right, in the DTE window, quoted tightly enough) is one compiled pass
(:func:`aiots.core.candidates.considered_rows`, the same rule); a modelled view, which prices rows
when they are read, goes through the NumPy filters and its refusals below.

The level maths of step 3-5 over every candidate in the delta band is one call of the core's kernel
(:func:`aiots.core.levels.contract_levels`, scalar C over the batch: at 3-40 contracts NumPy's
per-call cost was most of it).

Size: over 500 lines because the selector's refusals of a modelled chain without pricing it belong
with the checks they replay (in their order); the level maths lives in ``aiots.core.levels``, the
IV-bracket bound in ``gain_bound`` and the bound on every modelled contract in ``model_prune`` (its
kernel: ``aiots.core.quote_bounds``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from aiots.core import options as opt
from aiots.core.candidates import considered_rows
from aiots.core.conventions import (
    MINUTES_PER_REGULAR_SESSION,
    NS_PER_DAY,
    NS_PER_YEAR,
    SESSIONS_PER_YEAR,
    ExerciseStyle,
    calendar,
    exercise_style,
)
from aiots.core.execution import ExecutionModel
from aiots.core.levels import contract_levels, expected_value
from aiots.services.signals.atm_iv import event_risk
from aiots.services.signals.calibration import Calibrator, Context
from aiots.services.signals.chainview import F64, ChainView, QuoteModel, Rows, as_view
from aiots.services.signals.config import SelectionConfig, SignalsConfig
from aiots.services.signals.gain_bound import bracket_gain_and_delta_bounds
from aiots.services.signals.model_prune import all_settled
from aiots.services.signals.models import Direction, GreeksTU, Idea, OptionQuote

DELTA_PREFILTER_MARGIN = 0.05  # European vs American delta differ by far less for short-dated options
TU_PER_DAY, TU_PER_VOL = 365.0, 100.0  # opt.trader_units: theta per calendar day, vega/rho per point
PRUNE_MIN_ROWS = 24  # below this many contracts to solve, the gain bound costs more than the solves it saves
WITNESS_TRIES = 4  # witness tries per group (priced rows, the front expiry, all), nearest the band's middle first
WITNESS_DELTA_EPS = 1e-6  # the witness's European delta inside the prefilter band by this (batch rounding ~1e-16)
NO_PAY = "no contract pays its costs (spread, fees, stop distance) at positive expected value"
STYLE_MEMO_SIZE = 65_536  # OCC symbol -> exercise style kept (a live chain re-quotes the same contracts)


@dataclass(frozen=True)
class Selection:
    """The chosen contract and the levels derived for it (dollars per share)."""

    quote: OptionQuote
    entry: float
    target: float
    stop: float
    iv: float
    greeks: GreeksTU
    confidence: float
    expected_return_pct: float  # expected value after costs at ``confidence``, % of the premium paid
    reward_risk: float  # net gain at the target / net loss at the stop, fees included
    p_model: float
    risk_per_contract: float = 0.0  # dollars lost per contract at the stop, fees included
    suggested_contracts: int = 0
    style: str = "american"
    evidence: float = math.nan  # the strategy's 0..1 evidence (with the low-IV-rank bonus) fed to the calibration


class _Levels(NamedTuple):
    """What :meth:`ContractSelector._levels` derives for each candidate (arrays, dollars per share);
    ``valid`` is False where the contract can't pay its costs."""

    valid: npt.NDArray[np.bool_]
    entry: F64
    target: F64
    stop: F64
    rr: F64
    p_model: F64
    p_stop: F64
    gain: F64
    loss: F64
    cost: F64
    flat: F64  # the horizon exit valued with no move (the bid after theta, sold, less the cost)
    risk_usd: F64
    contracts: npt.NDArray[np.int64]
    ev_model_pct: F64  # expected value at the uncalibrated p_model: what picks the contract


_style_of_occ = functools.lru_cache(maxsize=STYLE_MEMO_SIZE)(exercise_style)


def _styles(view: ChainView, rows: Rows) -> list[ExerciseStyle]:
    """``view.styles(rows)``; for a view with the generic per-OCC rule, memoised per OCC symbol."""
    if type(view).styles is ChainView.styles:
        return [_style_of_occ(view.occ(i)) for i in rows.tolist()]
    return view.styles(rows)


def _fresh_rows(view: ChainView, now_ns: int, max_age_ns: int) -> tuple[Rows, bool]:
    """The rows quoted within ``max_age_ns`` of ``now_ns`` (ascending) and whether they are every row.
    A view with one quote time (``quote_ns``) has all or none: decided once, not per row."""
    n = len(view)
    quoted = view.quote_ns()
    if quoted is None:
        fresh = np.flatnonzero(now_ns - view.ts_ns <= max_age_ns)
        return fresh, len(fresh) == n  # ascending and unique: n of them is arange(n)
    if now_ns - quoted <= max_age_ns:
        return np.arange(n, dtype=np.intp), True
    return np.empty(0, dtype=np.intp), n == 0


def _considered(
    view: ChainView,
    cols: tuple[F64, F64],
    now_ns: int,
    max_age_ns: int,
    lo_ns: float,
    hi_ns: float,
    want_call: bool,
    sc: SelectionConfig,
) -> tuple[Rows, bool, Rows | None]:
    """(the rows of a view holding its quotes that pass the first cut, whether every row is fresh,
    the fresh rows or None when every row is): what :func:`_fresh_rows`, :func:`_liquid`,
    :func:`_in_dte` and the spread filter keep, in one compiled pass
    (:func:`aiots.core.candidates.considered_rows`, the same rule). The fresh rows are found only
    where some row is stale (event risk then reads only those)."""
    uniq, codes = view.expiry_index()
    expiry_ok = np.array([lo_ns <= e - now_ns <= hi_ns for e in uniq], dtype=np.uint8)
    rows, n_fresh = considered_rows(
        view.ts_ns,
        view.is_call.view(np.uint8),
        view.open_interest,
        view.volume,
        view.ask_size,
        cols[0],
        cols[1],
        codes,
        expiry_ok,
        now_ns,
        max_age_ns,
        want_call,
        sc.min_open_interest,
        sc.min_volume,
        sc.min_quote_size,
        sc.min_premium,
        sc.max_spread_frac,
    )
    every = n_fresh == len(view)
    return rows, every, None if every else _fresh_rows(view, now_ns, max_age_ns)[0]


def _in_dte(view: ChainView, rows: Rows, now_ns: int, lo_ns: float, hi_ns: float) -> Rows:
    """``expiry_mask(view, rows, lambda e: lo_ns <= e - now_ns <= hi_ns)`` (Python's exact int/float
    comparisons per distinct expiry); ``rows`` itself when every expiry passes (a new array either way
    for a writable ``rows``; a read-only one is returned as it is, never written)."""
    if not len(rows):
        return rows
    uniq, codes = view.expiry_index()
    ok = [lo_ns <= e - now_ns <= hi_ns for e in uniq]
    if all(ok) and not rows.flags.writeable:
        return rows
    return rows[np.array(ok, dtype=np.bool_)[codes[rows]]]


def _liquid(view: ChainView, rows: Rows | None, want_call: bool, sc: SelectionConfig) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` (None: every row, read without a gather) are of the wanted right with enough
    open interest, volume and size on the ask (a size of 0 or NaN is unknown and passes)."""

    def col(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a[rows]

    size = col(view.ask_size)
    ok: npt.NDArray[np.bool_] = (
        (col(view.is_call) == want_call)
        & (col(view.open_interest) >= sc.min_open_interest)
        & (col(view.volume) >= sc.min_volume)
        & ~((size > 0) & (size < sc.min_quote_size))
    )
    return ok


class ContractSelector:
    """Pick the best contract for an idea from the current chain of its underlying."""

    def __init__(self, execution: ExecutionModel | None = None, calibrator: Calibrator | None = None) -> None:
        self.execution = execution or ExecutionModel()
        self.calibrator = calibrator or Calibrator()
        self.last_skip: str = ""  # why the latest idea found no contract (for logs and tests)

    def select(
        self,
        idea: Idea,
        chain: ChainView | Sequence[OptionQuote],
        now_ns: int,
        cfg: SignalsConfig,
        *,
        dividend_yield: float = 0.0,
        iv_rank: float = math.nan,
        horizon_end_ns: int | None = None,
    ) -> Selection | None:
        """The best contract, or None (``last_skip`` says why). ``horizon_end_ns`` defaults to
        ``now_ns + idea.horizon_ns``; the engine clips it before the session's close."""
        sc = cfg.selection
        self.last_skip = ""
        if math.isfinite(iv_rank) and iv_rank > sc.max_iv_rank_debit:
            self.last_skip = f"IV rank {iv_rank:.0f} above {sc.max_iv_rank_debit:.0f}: premium too rich to buy"
            return None
        want_call = idea.direction is Direction.BULLISH
        ex = self.execution
        view = as_view(chain)
        lo_ns, hi_ns = sc.dte_min * NS_PER_DAY, sc.dte_max * NS_PER_DAY
        cols = view.quote_columns()
        if cols is not None and view.quote_model() is None:  # quotes held: the first cut in one pass
            rows, every, fresh = _considered(view, cols, now_ns, ex.max_quote_age_ns, lo_ns, hi_ns, want_call, sc)
            bid, ask = cols[0][rows], cols[1][rows]
            mids = 0.5 * (bid + ask)
            return self._select_among(
                idea, view, rows, mids, bid, ask, now_ns, cfg, dividend_yield, iv_rank, horizon_end_ns, every, fresh
            )
        fresh_rows, every = _fresh_rows(view, now_ns, ex.max_quote_age_ns)
        # every row fresh: the view may know its liquid rows without a scan (the modelled chain's are one right)
        pre_rows = view.liquid_rows(want_call, sc.min_open_interest, sc.min_volume) if every else None
        if pre_rows is None:
            pre = _liquid(view, None if every else fresh_rows, want_call, sc)
            pre_rows = np.flatnonzero(pre) if every else fresh_rows[pre]
        rows = _in_dte(view, pre_rows, now_ns, lo_ns, hi_ns)
        if want_call and every and dividend_yield == 0.0 and len(rows):
            model = view.quote_model()
            if model is not None:  # a modelled chain's calls: perhaps refused without pricing them
                refused = self._refuse_modelled_calls(view, model, rows, idea, now_ns, cfg, horizon_end_ns)
                if refused is not None:
                    self.last_skip = refused
                    return None
        elif every and dividend_yield == 0.0 and len(rows):
            model = view.quote_model()
            if model is not None:  # its puts: the same, their pricing batch deferred
                refused = self._refuse_modelled_puts(view, model, rows, idea, now_ns, cfg, horizon_end_ns)
                if refused is not None:
                    self.last_skip = refused
                    return None
        bid, ask = view.bid_ask(rows)
        mid = 0.5 * (bid + ask)
        two = (bid > 0.0) & (ask >= bid)
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = two & (mid >= sc.min_premium) & ((ask - bid) / mid <= sc.max_spread_frac)
        rows, mids, bid, ask = rows[keep], mid[keep], bid[keep], ask[keep]
        return self._select_among(
            idea, view, rows, mids, bid, ask, now_ns, cfg, dividend_yield, iv_rank, horizon_end_ns, every, fresh_rows
        )

    def _select_among(
        self,
        idea: Idea,
        view: ChainView,
        rows: Rows,
        mids: F64,
        bid: F64,
        ask: F64,
        now_ns: int,
        cfg: SignalsConfig,
        dividend_yield: float,
        iv_rank: float,
        horizon_end_ns: int | None,
        every: bool,
        fresh_rows: Rows | None,
    ) -> Selection | None:
        """:meth:`select` from the contracts its first cut kept (``rows``, quoted ``bid``/``ask``,
        their ``mids``); ``every``: every row of the view is fresh (else ``fresh_rows`` are: event risk
        reads only those)."""
        sc = cfg.selection
        want_call = idea.direction is Direction.BULLISH
        if not len(rows):
            self.last_skip = "no fresh, liquid contract in the DTE, spread and size limits"
            return None
        S = idea.underlying_price
        r = sc.risk_free_rate
        # every row fresh: rows=None, so event_risk need not check that over the whole chain
        kink = event_risk(view, S, now_ns, r, dividend_yield, sc.event_iv_ratio, rows=None if every else fresh_rows)
        if kink is not None:
            self.last_skip = kink
            return None
        end = now_ns + idea.horizon_ns if horizon_end_ns is None else horizon_end_ns
        minutes = calendar().regular_ns_between(now_ns, end) / 60e9
        if minutes <= 0:
            self.last_skip = "no trading time left in the horizon"
            return None
        # Cheap pre-filter: European IV/delta (microseconds) keeps only contracts near the delta
        # band, so the costly solver runs on a handful of them.
        K = view.strike[rows]
        uniq, codes = view.expiry_index()  # years to expiry once per expiry (exact int arithmetic first)
        T = np.array([(e - now_ns) / NS_PER_YEAR for e in uniq])[codes[rows]]
        iv_eu = np.asarray(opt.implied_vol(mids, S, K, T, r, dividend_yield, want_call), float)
        near = np.isfinite(iv_eu)
        if near.any():
            d_eu = np.abs(opt.bs_greeks(S, K[near], T[near], r, iv_eu[near], dividend_yield, want_call)["delta"])
            keep = (d_eu >= sc.delta_min - DELTA_PREFILTER_MARGIN) & (d_eu <= sc.delta_max + DELTA_PREFILTER_MARGIN)
            near[np.flatnonzero(near)[~keep]] = False
        # European IV fails below the European bound (deep ITM American puts): let the American solver try.
        near |= ~np.isfinite(iv_eu)
        if not near.any():
            self.last_skip = "no contract near the delta band"
            return None
        rows = rows[near]
        bids, asks = bid[near], ask[near]
        mults = view.multiplier[rows]
        mids, K, T = mids[near], K[near], T[near]
        iv = self._solve_ivs(view, rows, mids, bids, asks, iv_eu[near], S, K, T, idea, minutes, dividend_yield, cfg)
        if iv is None:
            self.last_skip = "no implied volatility solves"
            return None
        ok = np.isfinite(iv) & (iv > 0)
        g = opt.bs_greeks(S, K[ok], T[ok], r, iv[ok], dividend_yield, want_call)
        evidence = idea.evidence + (
            cfg.confidence.low_iv_bonus if math.isfinite(iv_rank) and iv_rank < sc.low_iv_rank else 0.0
        )
        evidence = min(1.0, max(0.0, evidence))
        # trader units (opt.trader_units' divisions, on the three fields every contract needs)
        gd, gg, gt = g["delta"], g["gamma"], g["theta"] / TU_PER_DAY
        ad = np.abs(gd)
        band = np.flatnonzero((sc.delta_min <= ad) & (ad <= sc.delta_max))  # positions among the solved rows
        at = np.flatnonzero(ok)[band]  # positions among ``rows``
        if not len(at):
            self.last_skip = "no contract pays its costs (spread, fees, stop distance) at positive expected value"
            return None
        b_arr, a_arr = bids[at], asks[at]
        lv = self._levels(b_arr, a_arr, mults[at], idea, S, iv[at], gd[band], gg[band], gt[band], minutes, cfg)
        spread_frac = (a_arr - b_arr) / (0.5 * (b_arr + a_arr))
        # The contract is picked by its expected value at the *uncalibrated* model probability,
        # the rule the calibration's candidate outcomes were generated with; only then is the
        # calibrated expected value gated. Picking by the calibrated value would choose where
        # the calibration errs high, outside the population it was fitted on.
        pick = _best(lv.valid, lv.ev_model_pct, spread_frac, lambda k: view.occ(int(rows[at[k]])))
        if pick is None:
            self.last_skip = "no contract pays its costs (spread, fees, stop distance) at positive expected value"
            return None
        k = pick
        idx = int(at[k])
        rr, p_model, cost = float(lv.rr[k]), float(lv.p_model[k]), float(lv.cost[k])
        conf = self.calibrator(p_model, evidence, Context(idea.strategy, float(spread_frac[k]), rr, minutes))
        ev = expected_value(conf, p_model, float(lv.p_stop[k]), float(lv.gain[k]), float(lv.loss[k]), float(lv.flat[k]))
        ev_pct = 100.0 * ev / cost
        if not ev_pct > sc.min_expected_value_pct:
            self.last_skip = "no contract pays its costs (spread, fees, stop distance) at positive expected value"
            return None
        j = int(band[k])
        return Selection(
            quote=view.quote(int(rows[idx])),
            entry=float(lv.entry[k]),
            target=float(lv.target[k]),
            stop=float(lv.stop[k]),
            iv=float(iv[idx]),
            greeks=GreeksTU(
                float(gd[j]),
                float(gg[j]),
                float(gt[j]),
                float(g["vega"][j] / TU_PER_VOL),
                float(g["rho"][j] / TU_PER_VOL),
            ),
            confidence=conf,
            expected_return_pct=ev_pct,
            reward_risk=rr,
            p_model=p_model,
            risk_per_contract=float(lv.risk_usd[k]),
            suggested_contracts=int(lv.contracts[k]),
            style=_styles(view, rows[idx : idx + 1])[0],
            evidence=evidence,
        )

    def _refuse_modelled_calls(
        self,
        view: ChainView,
        model: QuoteModel,
        rows: Rows,
        idea: Idea,
        now_ns: int,
        cfg: SignalsConfig,
        horizon_end_ns: int | None,
    ) -> str | None:
        """The skip reason :meth:`select` gives a bullish idea on a modelled chain (no yield) whose
        calls ``rows`` (liquid, in the DTE window, not priced yet) are all *settled*
        (:func:`~aiots.services.signals.model_prune.all_settled`: dropped by the delta prefilter or
        unable to pay, whatever their quotes), or None when that is not shown (then the generic path
        decides; every call this priced is priced as it would have been, one row at a time).

        The generic path's answer is then fixed by its earlier checks: a *witness* call, priced and
        solved exactly as there, passes the liquidity/spread filter, lies near the band (robustly:
        its European delta is inside the prefilter band by 1e-6) and has an American IV, so the
        answer is the event-risk sentence if any, else "no contract pays". Event risk runs as there,
        on the same priced calls: ``rows`` are deferred (``ChainView.defer_batch``; the modelled view
        prices these calls, whose numbers do not depend on their batch, when read and apart from any
        other row), so the contracts it prices with them (puts, calls outside the window) go to the
        core in the batches the generic path gives them."""
        sc = cfg.selection
        S, r = idea.underlying_price, sc.risk_free_rate
        window = _all_settled(view, model, rows, idea, now_ns, cfg, horizon_end_ns, is_call=True)
        if window is None:
            return None
        K, T, _ = window
        if not self._witness(view, model, rows, K, T, S, r, sc, want_call=True):
            return None
        # any call of ``rows`` event risk reads is priced apart from the puts it reads with it, as the
        # generic path has it priced (these calls' numbers do not depend on their batch)
        view.defer_batch(rows)
        kink = event_risk(view, S, now_ns, r, 0.0, sc.event_iv_ratio, rows=None)
        return kink if kink is not None else NO_PAY

    def _refuse_modelled_puts(
        self,
        view: ChainView,
        model: QuoteModel,
        rows: Rows,
        idea: Idea,
        now_ns: int,
        cfg: SignalsConfig,
        horizon_end_ns: int | None,
    ) -> str | None:
        """:meth:`_refuse_modelled_calls` for a bearish idea (puts, American, no yield): the puts'
        last bits depend on their pricing batch, so the batch the generic path would price now
        (``rows``) is deferred (``ChainView.defer_batch``): every put read later, the witness and
        those event risk reads included, is priced with its block of that batch, the same number."""
        sc = cfg.selection
        S, r = idea.underlying_price, sc.risk_free_rate
        window = _all_settled(view, model, rows, idea, now_ns, cfg, horizon_end_ns, is_call=False)
        if window is None:
            return None
        K, T, _ = window
        view.defer_batch(rows)  # from here on, any put of ``rows`` is priced as the generic path would have
        if not self._witness(view, model, rows, K, T, S, r, sc, want_call=False):
            return None
        kink = event_risk(view, S, now_ns, r, 0.0, sc.event_iv_ratio, rows=None)
        return kink if kink is not None else NO_PAY

    @staticmethod
    def _witness(
        view: ChainView,
        model: QuoteModel,
        rows: Rows,
        K: F64,
        T: F64,
        S: float,
        r: float,
        sc: SelectionConfig,
        *,
        want_call: bool,
    ) -> bool:
        """Whether one of ``rows``, priced and solved exactly as the generic path does (no yield),
        passes the liquidity/spread filter, lies near the delta band by :data:`WITNESS_DELTA_EPS` (or
        has no European IV) and has an American IV. Tried: the rows priced already first (reading
        them prices nothing; on the usual bar the ATM read has priced the front expiry's ATM call
        and put), then the front expiry's (event risk reads its ATM contracts: a put's deferred
        block is priced anyway), then all; each group nearest the band's middle first (delta at the
        view's IV), :data:`WITNESS_TRIES` of each (a row tried once). Which row is the witness
        changes no answer (any passing row proves the generic path reaches event risk; none found:
        the generic path decides), only which deferred block is priced now rather than later (the
        same numbers: the batch rule)."""
        middle = 0.5 * (sc.delta_min + sc.delta_max)
        lo_d, hi_d = sc.delta_min - DELTA_PREFILTER_MARGIN, sc.delta_max + DELTA_PREFILTER_MARGIN
        codes = view.expiry_index()[1][rows]
        groups = (np.flatnonzero(view.priced(rows)), np.flatnonzero(codes == codes[0]), None)
        tried: list[int] = []
        for at in groups:
            if at is not None and not len(at):
                continue
            for c in _nearest(S, K, T, r, model.iv, want_call, middle, at):
                if c in tried:
                    continue
                tried.append(c)
                if _witness_passes(view, rows, c, K, T, S, r, sc, lo_d, hi_d, want_call=want_call):
                    return True
        return False

    def _solve_ivs(
        self,
        view: ChainView,
        rows: Rows,
        mids: F64,
        bids: F64,
        asks: F64,
        iv_eu: F64,
        S: float,
        K: F64,
        T: F64,
        idea: Idea,
        minutes: float,
        q: float,
        cfg: SignalsConfig,
    ) -> F64 | None:
        """The implied vol of each of ``rows`` for its exercise style (NaN where it was not solved or
        has none), or None when none of them solves.

        The solve is skipped (NaN) for contracts whose projected gain provably can't pay
        ``spread_cover`` half-spreads at any IV the solver could return
        (:func:`~aiots.services.signals.gain_bound.gain_upper_bound`): :meth:`_levels` would reject
        them, or they fall outside the delta band, so the pick is the same. Each contract's IV is
        solved alone (element by element the vectorised solve gives the same numbers), so solving
        fewer changes none of them; the Greeks computed afterwards over the solved rows only can
        differ by an ulp from those over every row (the core's SIMD body vs its scalar tail)."""
        sc = cfg.selection
        r = sc.risk_free_rate
        want_call = idea.direction is Direction.BULLISH
        # The American bracket holds the European answer too: no style needed to prune.
        if len(rows) >= PRUNE_MIN_ROWS:
            days = minutes / MINUTES_PER_REGULAR_SESSION
            bound = bracket_gain_and_delta_bounds(
                mids, iv_eu, S, K, T, r, q, want_call, idea.projected_move, days, sc.delta_max
            )[0]
            # as _levels' first test; NaN: solve. Not skipped: a contract whose |delta| is surely
            # outside the band (the bound's delta range says so): it would change which contracts
            # reach the core's vectorised Greeks below, whose last bits depend on a row's place in
            # the batch (SIMD body or tail), so the chosen contract's Greeks could move by an ulp.
            cannot_pay = bound <= sc.spread_cover * 0.5 * (asks - bids)
        else:
            cannot_pay = np.zeros(len(rows), dtype=np.bool_)
        solve = np.flatnonzero(~cannot_pay)
        iv = np.full(len(rows), np.nan)
        if len(solve):
            styles = _styles(view, rows[solve])
            kinds = set(styles)
            for style in kinds:
                at = solve[[st == style for st in styles]] if len(kinds) > 1 else solve
                iv[at] = np.asarray(opt.implied_vol(mids[at], S, K[at], T[at], r, q, want_call, style=style), float)
        if (np.isfinite(iv) & (iv > 0)).any():
            return iv
        # Whether any skipped contract solves decides only the skip reason: solve them one by one.
        for i in np.flatnonzero(cannot_pay).tolist():
            style = _styles(view, rows[i : i + 1])[0]
            one = np.asarray(
                opt.implied_vol(mids[i : i + 1], S, K[i : i + 1], T[i : i + 1], r, q, want_call, style=style)
            )
            v = float(one[0])
            if math.isfinite(v) and v > 0:
                return iv
        return None

    def _levels(
        self,
        bid: F64,
        ask: F64,
        multiplier: npt.NDArray[np.int64],
        idea: Idea,
        spot: float,
        iv: F64,
        delta: F64,
        gamma: F64,
        theta: F64,
        minutes: float,
        cfg: SignalsConfig,
    ) -> _Levels:
        """Executable entry/target/stop of each contract quoted ``bid``/``ask`` (arrays), and whether
        it can pay its costs (``valid``)."""
        sc = cfg.selection
        ex = self.execution
        trading_days = minutes / MINUTES_PER_REGULAR_SESSION
        years = trading_days / SESSIONS_PER_YEAR
        dS = idea.projected_move
        atr = idea.atr if math.isfinite(idea.atr) and idea.atr > 0 else abs(dS)
        log_drift = math.log((spot + dS) / spot) / years if spot + dS > 0 else math.nan
        out = contract_levels(
            bid,
            ask,
            multiplier,
            iv,
            delta,
            gamma,
            theta,
            spot=spot,
            move=dS,
            trading_days=trading_days,
            years=years,
            log_drift=log_drift,
            bullish=idea.direction is Direction.BULLISH,
            theta_days_per_year=TU_PER_DAY,
            sessions_per_year=SESSIONS_PER_YEAR,
            noise_move=atr * math.sqrt(sc.noise_bars),
            fee_per_contract=ex.fee_per_contract,
            exit_fee_per_share=ex.fee_per_share,
            spread_cover=sc.spread_cover,
            target_min_pct=sc.target_min_pct,
            target_max_pct=sc.target_max_pct,
            target_capture=sc.target_capture,
            stop_spread_mult=sc.stop_spread_mult,
            stop_noise_mult=sc.stop_noise_mult,
            max_stop_pct=sc.max_stop_pct,
            min_reward_risk=sc.min_reward_risk,
            risk_per_trade_usd=cfg.sizing.risk_per_trade_usd,
        )
        valid, target, stop, rr, p_model, p_stop, gain, loss, cost, flat, risk_usd, contracts, ev_model_pct = out
        return _Levels(
            valid, ask, target, stop, rr, p_model, p_stop, gain, loss, cost, flat, risk_usd, contracts, ev_model_pct
        )


def _nearest(
    S: float, K: F64, T: F64, r: float, iv: float, want_call: bool, middle: float, at: Rows | None
) -> list[int]:
    """The positions in ``K``/``T`` (among ``at``; None: all) of the :data:`WITNESS_TRIES` contracts
    whose |delta| at ``iv`` (no yield) is nearest ``middle``, nearest first (ties: first first)."""
    if at is not None and len(at) == 1:  # nothing to order
        one: list[int] = at.tolist()
        return one
    k, t = (K, T) if at is None else (K[at], T[at])
    d = np.abs(np.asarray(opt.bs_greeks(S, k, t, r, iv, 0.0, want_call)["delta"], dtype=np.float64))
    order = np.argsort(np.abs(d - middle), kind="stable")[:WITNESS_TRIES]
    out: list[int] = (order if at is None else at[order]).tolist()
    return out


def _witness_passes(
    view: ChainView,
    rows: Rows,
    c: int,
    K: F64,
    T: F64,
    S: float,
    r: float,
    sc: SelectionConfig,
    lo_d: float,
    hi_d: float,
    *,
    want_call: bool,
) -> bool:
    """Whether ``rows[c]``, priced and solved exactly as the generic path does (no yield), passes the
    liquidity/spread filter, lies inside the prefilter band [``lo_d``, ``hi_d``] by
    :data:`WITNESS_DELTA_EPS` (or has no European IV) and has an American IV."""
    one = rows[c : c + 1]
    bid, ask = view.bid_ask(one)
    mid = 0.5 * (bid + ask)
    # the generic filter on one contract, in floats (the same IEEE operations): two-sided, so
    # the mid is positive and the spread's fraction of it is defined
    b, a, m = float(bid[0]), float(ask[0]), float(mid[0])
    if not (b > 0.0 and a >= b and m >= sc.min_premium and (a - b) / m <= sc.max_spread_frac):
        return False
    k1, t1 = K[c : c + 1], T[c : c + 1]
    iv_eu = float(np.asarray(opt.implied_vol(mid, S, k1, t1, r, 0.0, want_call), float)[0])
    if math.isfinite(iv_eu):
        d = abs(float(opt.bs_greeks(S, k1, t1, r, np.array([iv_eu]), 0.0, want_call)["delta"][0]))
        if not (lo_d + WITNESS_DELTA_EPS <= d <= hi_d - WITNESS_DELTA_EPS):
            return False
    style = _styles(view, one)[0]
    iv_am = float(np.asarray(opt.implied_vol(mid, S, k1, t1, r, 0.0, want_call, style=style), float)[0])
    return math.isfinite(iv_am) and iv_am > 0


def _all_settled(
    view: ChainView,
    model: QuoteModel,
    rows: Rows,
    idea: Idea,
    now_ns: int,
    cfg: SignalsConfig,
    horizon_end_ns: int | None,
    *,
    is_call: bool,
) -> tuple[F64, F64, list[int]] | None:
    """(strikes, years to expiry, the view's expiries in ns) of ``rows`` when every one of them (calls
    if ``is_call``, else puts) is settled for ``idea``
    (:func:`~aiots.services.signals.model_prune.all_settled`); None when one is not settled or the
    horizon has no trading time. The years are the generic path's (exact int arithmetic per expiry)."""
    sc = cfg.selection
    end = now_ns + idea.horizon_ns if horizon_end_ns is None else horizon_end_ns
    minutes = calendar().regular_ns_between(now_ns, end) / 60e9
    if minutes <= 0:
        return None
    K = view.strike[rows]
    uniq, codes = view.expiry_index()
    T = np.array([(e - now_ns) / NS_PER_YEAR for e in uniq])[codes[rows]]
    if all_settled(
        model,
        idea.underlying_price,
        K,
        T,
        sc.risk_free_rate,
        idea.projected_move,
        minutes / MINUTES_PER_REGULAR_SESSION,
        sc.delta_min,
        sc.delta_max,
        DELTA_PREFILTER_MARGIN,
        sc.spread_cover,
        is_call=is_call,
    ):
        return K, T, uniq
    return None


def _best(valid: npt.NDArray[np.bool_], ev: F64, spread_frac: F64, occ: Callable[[int], str]) -> int | None:
    """The position of the largest key (expected value, -spread, OCC symbol) among ``valid`` ones:
    Python's tuple order, as one pass keeping the first strictly larger key would find it."""
    cand = np.flatnonzero(valid)
    if not len(cand):
        return None
    e = ev[cand]
    if np.isnan(e).any():  # NaN compares False both ways: keep the sequential rule exactly
        best: tuple[tuple[float, float, str], int] | None = None
        for k in cand.tolist():
            key = (float(ev[k]), -float(spread_frac[k]), occ(k))
            if best is None or key > best[0]:
                best = (key, k)
        assert best is not None
        return best[1]
    cand = cand[e == e.max()]
    if len(cand) > 1:
        neg = -spread_frac[cand]
        cand = cand[neg == neg.max()]
    if len(cand) > 1:
        return int(max(cand.tolist(), key=occ))
    return int(cand[0])
