"""Issue 13 items 4-7 on real chains: quote hygiene, exercise style, carry, arbitrage-free surface.

Oracles: hand-derived hygiene cases; py_vollib (Black-Scholes-Merton IV and gamma, independent of
the compiled core); the quoted chains themselves (25-delta risk reversal sign); dense-grid
evaluation of Gatheral's density factor and of total variance across expiries.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiots.core import conventions as cv
from aiots.core import options as opt
from aiots.services.analytics import options_analytics as oa
from aiots.services.analytics import quotes as qh
from aiots.services.analytics import surface

from . import _real_chains as rc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NS = cv.NS_PER_S
CFG = oa.AnalyticsConfig(rate=rc.SPXW_RATE, unusual_threshold=2.0)
STALE_DAY = "2018-02-05"


# -- item 4: hygiene rules, hand-derived -----------------------------------------------------------------


def test_hygiene_rules_hand_cases() -> None:
    as_of = 1_000 * NS
    nan = math.nan
    bid = np.array([1.0, 0.0, 2.0, 1.5, nan, 0.0, 0.0, 0.0, 0.0, 1.0])
    ask = np.array([1.2, 0.10, 1.9, 1.5, 0.5, 0.0, 0.0, 0.0, 0.0, 1.1])
    last = np.array([nan, 0.05, nan, nan, nan, 0.7, 0.7, 0.7, nan, 9.0])
    last_ts = np.array([0, 0, 0, 0, 0, as_of - 60 * NS, as_of - 3600 * NS, 0, 0, as_of], dtype=np.int64)
    c = qh.clean_prices(bid, ask, last, last_ts, as_of, 900 * NS)
    assert c.reason == [
        "",  # two-sided
        "ONE_SIDED",  # bid 0: never ask/2, and the last has no known age
        "CROSSED",
        "",  # locked (bid == ask) is a quote
        "ONE_SIDED",  # no bid at all
        "LAST_PRICE",  # fresh last (60 s < 900 s): used, flagged
        "STALE_LAST",  # last an hour old
        "STALE_LAST",  # last of unknown age
        "NO_QUOTE",
        "",  # a two-sided quote wins over the last
    ]
    assert c.source == ["quote", "", "", "quote", "", "last", "", "", "", "quote"]
    want = [1.1, nan, nan, 1.5, nan, 0.7, nan, nan, nan, 1.05]
    np.testing.assert_allclose(c.price, want, equal_nan=True)
    assert qh.exclusion_counts(c.reason) == [("ONE_SIDED", 2), ("STALE_LAST", 2), ("CROSSED", 1), ("LAST_PRICE", 1),
                                             ("NO_QUOTE", 1)]  # fmt: skip


# -- item 5: European style on the real SPXW day ---------------------------------------------------------


def _vollib_iv(price: float, s: float, k: float, t: float, r: float, q: float, call: bool) -> float:
    from py_vollib.black_scholes_merton.implied_volatility import implied_volatility

    try:
        return float(implied_volatility(price, s, k, t, r, q, "c" if call else "p"))
    except Exception:  # py_vollib raises on prices outside the no-arbitrage bounds
        return math.nan


def test_spxw_european_ivs_match_py_vollib(shared_data: Path) -> None:
    """Every two-sided SPXW contract of 2018-02-05 gets py_vollib's BSM IV (at the parity-forward
    yield the response reports); the contracts the American pricer could not solve now solve."""
    chain, times = rc.spxw(shared_data, STALE_DAY)
    ch = oa.enrich(chain, CFG, times=times)
    assert ch.exercise_style == "european" and ch.pricing_model == "black-scholes-merton"
    (e,) = set(ch.expiry)
    q = ch.q_used[e]
    assert q == pytest.approx(CFG.rate - math.log(ch.forward[e] / ch.spot) / ch.t[0], abs=1e-12)
    quote = np.array([s == "quote" for s in ch.price_source])
    checked = 0
    for i in np.flatnonzero(quote):
        want = _vollib_iv(ch.mid[i], ch.spot, ch.strike[i], ch.t[i], CFG.rate, q, bool(ch.is_call[i]))
        if math.isfinite(want):
            assert ch.iv[i] == pytest.approx(want, abs=1e-6), ch.occ[i]
            checked += 1
        else:
            assert not math.isfinite(ch.iv[i]), ch.occ[i]
    assert checked > 250
    # The same mids under the American model with the same yield (the old path): contracts it
    # cannot solve, which the European pricer solves now.
    idx = np.flatnonzero(quote)
    am = opt.implied_vol(ch.mid[idx], ch.spot, ch.strike[idx], ch.t[idx], CFG.rate, q, ch.is_call[idx],
                         style="american", method="bjerksund_stensland_2002")  # fmt: skip
    lost = idx[~np.isfinite(np.asarray(am))]
    recovered = lost[np.isfinite(ch.iv[lost])]
    print(f"SPXW {STALE_DAY}: American-unsolvable two-sided quotes {lost.size}, solved as European {recovered.size}")
    assert recovered.size >= 20


def test_spxw_gamma_exposure_matches_py_vollib(shared_data: Path) -> None:
    """Dealer GEX over the contracts priced from quotes equals the py_vollib oracle (BSM gamma at
    py_vollib's IV); the American path shifts it."""
    from py_vollib.black_scholes_merton.greeks.analytical import gamma as vgamma

    chain, times = rc.spxw(shared_data, STALE_DAY)
    ch = oa.enrich(chain, CFG, times=times)
    (e,) = set(ch.expiry)
    q = ch.q_used[e]
    s = ch.spot
    ours = oracle = 0.0
    for i in range(len(ch.occ)):
        if ch.price_source[i] != "quote" or ch.open_interest[i] <= 0 or not math.isfinite(ch.iv[i]):
            continue
        v = _vollib_iv(ch.mid[i], s, ch.strike[i], ch.t[i], CFG.rate, q, bool(ch.is_call[i]))
        sign = 1.0 if ch.is_call[i] else -1.0
        w = sign * ch.open_interest[i] * 100 * s * s * 0.01
        oracle += w * float(vgamma("c", s, ch.strike[i], ch.t[i], CFG.rate, v, q))
        ours += w * float(ch.gex_gamma[i])
    assert ours == pytest.approx(oracle, rel=1e-6)
    # contracts with open interest but no usable price take the smile IV (counted, not dropped)
    assert ch.gex_smile_filled > 0
    a = oa.analyze(ch, CFG, np.array([]))
    assert a.total_gex == pytest.approx(float(np.nansum(np.where(ch.is_call, 1, -1) * ch.gex_gamma * ch.open_interest))
                                        * 100 * s * s * 0.01, rel=1e-9)  # fmt: skip


# -- item 4: the stale-last day ---------------------------------------------------------------------------


def test_stale_last_does_not_move_the_skew(shared_data: Path) -> None:
    """2018-02-05: 15 contracts have no bid/ask and only a last of unknown age. With or without
    them in the chain, ATM IV, the 25-delta risk reversal and butterfly are identical, and the
    response counts them."""
    with_stale = oa.analyze(oa.enrich(*_spxw_args(shared_data, False)), CFG, np.array([]))
    without = oa.analyze(oa.enrich(*_spxw_args(shared_data, True)), CFG, np.array([]))
    (a,), (b,) = with_stale.expiries, without.expiries
    assert (a.atm_iv, a.rr25, a.bf25, a.forward) == (b.atm_iv, b.rr25, b.bf25, b.forward)
    assert a.rr25 < 0  # equity index skew
    assert dict(a.excluded)["STALE_LAST"] == 15 and "STALE_LAST" not in dict(b.excluded)
    assert dict(with_stale.excluded)["STALE_LAST"] == 15


def _spxw_args(shared: Path, drop: bool) -> tuple[object, oa.AnalyticsConfig, None, oa.ChainTimes]:
    chain, times = rc.spxw(shared, STALE_DAY, drop_stale=drop)
    return chain, CFG, None, times


# -- item 6: carry and spot timing -----------------------------------------------------------------------


def test_yfinance_spot_out_of_sync_is_flagged(shared_data: Path) -> None:
    """The yfinance ~15:45 snapshots fetched the spot after 16:15 ET while the delayed quotes are
    older: the response says so, and the carry is reported as carry, not as a dividend yield."""
    df = rc.yfinance_snapshots(shared_data, "GOOG")
    commit = sorted(df.snapshot_commit_et.unique())[-1]
    chain, times = rc.yfinance(df, commit)
    cfg = oa.AnalyticsConfig(rate=0.04, unusual_threshold=2.0, dividend_yield=0.0026)
    ch = oa.enrich(chain, cfg, times=times)
    assert ch.exercise_style == "american" and ch.pricing_model == "bjerksund-stensland-2002"
    assert not ch.spot_in_sync and abs(ch.spot_lag_s) > cfg.spot_sync_tolerance_ns / NS
    assert ch.dividend_yield == 0.0026
    a = oa.analyze(ch, cfg, np.array([]))
    for e in a.expiries:
        if e.forward_source == oa.PARITY:
            assert e.implied_carry == pytest.approx(math.log(e.forward / ch.spot) / (e.dte / 365.0), rel=1e-9)
    # fresh last trades priced some contracts (flagged), stale ones did not
    assert "LAST_PRICE" in dict(a.excluded)
    # the same chain with the spot stamped at the quote time is in sync
    synced = oa.enrich(chain, cfg, times=oa.ChainTimes(int(np.max(chain.ts)), times.last_ts))
    assert synced.spot_in_sync and synced.spot_lag_s == 0.0


# -- item 7: arbitrage-free surface on real chains -------------------------------------------------------


def _assert_surface(fit: surface.SurfaceFit, quotes: list[surface.SliceQuotes], label: str) -> int:
    """Every OK slice: g >= 0 on a dense wide grid, skew sign agrees with the quoted risk reversal;
    OK slices are calendar-ordered; every other slice has a reason. Returns the OK count."""
    ok = fit.ok
    for s in fit.slices:
        if s.status != "OK":
            assert s.reason, (label, s.label)
            continue
        q = next(x for x in quotes if x.label == s.label)
        grid = np.linspace(float(q.k.min()) - 2.0, float(q.k.max()) + 2.0, 4001)
        g = s.params.density_factor(grid)
        assert float(g.min()) >= 0.0, (label, s.label, float(g.min()))
        if math.isfinite(q.quoted_rr25) and abs(q.quoted_rr25) >= surface.SKEW_SIGN_TOL:
            iv_c, iv_p = surface.slice_iv(s.params, np.array([q.k_call25, q.k_put25]), s.t).tolist()
            assert np.sign(iv_c - iv_p) == np.sign(q.quoted_rr25), (label, s.label)
    by_label = {x.label: x for x in quotes}
    for short, long_ in itertools.pairwise(ok):
        # each pair of neighbouring OK slices, over both slices' quoted range widened to [-2, 2] at least
        lo = min(float(by_label[short.label].k.min()), float(by_label[long_.label].k.min()), -1.0) - 1.0
        hi = max(float(by_label[short.label].k.max()), float(by_label[long_.label].k.max()), 1.0) + 1.0
        k = np.linspace(lo, hi, 2001)
        gap = long_.params.total_variance(k) - short.params.total_variance(k)
        assert float(gap.min()) >= -1e-12, (label, short.label, long_.label, float(gap.min()))
    return len(ok)


def _fit(chain: object, times: oa.ChainTimes, cfg: oa.AnalyticsConfig) -> tuple[surface.SurfaceFit, list]:
    ch = oa.enrich(chain, cfg, times=times)
    quotes = oa.surface_quotes(ch, cfg.rate)
    return surface.fit_surface(quotes), quotes


def test_surface_spxw_every_day(shared_data: Path) -> None:
    total = ok = 0
    for day in rc.spxw_days(shared_data):
        chain, times = rc.spxw(shared_data, day)
        fit, quotes = _fit(chain, times, CFG)
        total += len(fit.slices)
        ok += _assert_surface(fit, quotes, f"SPXW {day}")
    print(f"SPXW 2018-01..02: {ok} of {total} slices OK")
    assert ok >= 30


@pytest.mark.parametrize("symbol", ["AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA"])
def test_surface_yfinance_snapshots(shared_data: Path, symbol: str) -> None:
    """First and last snapshot of each symbol's multi-day yfinance capture (all expiries)."""
    df = rc.yfinance_snapshots(shared_data, symbol)
    commits = sorted(df.snapshot_commit_et.unique())
    cfg = oa.AnalyticsConfig(rate=0.04, unusual_threshold=2.0)
    ok = total = 0
    for commit in {commits[0], commits[-1]}:
        chain, times = rc.yfinance(df, commit)
        fit, quotes = _fit(chain, times, cfg)
        total += len(fit.slices)
        ok += _assert_surface(fit, quotes, f"{symbol} {commit}")
    print(f"{symbol}: {ok} of {total} slices OK")


def test_surface_intraday_goog_and_spx(shared_data: Path) -> None:
    """Lean 1-minute quotes: GOOG 2015-12-24 11:00 ET (early-close day, all listed expiries) and
    SPX/SPXW 2021-01-04 15:00 (a handful of contracts per expiry: those slices say TOO_FEW_QUOTES)."""
    intraday = shared_data / "options-intraday"
    und = pd.read_csv(intraday / "lean_GOOG_1m_quotes_2015-12-24_2015-12-28.csv")
    at = "2015-12-24 11:00:00"
    row = und[und.datetime == at].iloc[0]
    spot = (float(row.bid_close) + float(row.ask_close)) / 2.0
    quotes = pd.read_csv(intraday / "lean_GOOG_options_1m_quotes_2015-12-24.csv.gz")
    chain, times = rc.lean_minute(quotes, spot, at)
    cfg = oa.AnalyticsConfig(rate=0.002, unusual_threshold=2.0)
    fit, sq = _fit(chain, times, cfg)
    n_ok = _assert_surface(fit, sq, f"GOOG {at}")
    print(f"GOOG {at}: {n_ok} of {len(fit.slices)} slices OK")
    assert n_ok >= 3

    spx = pd.read_csv(intraday / "lean_SPX-SPXW_options_1m_quotes_2021-01-04_2023-06-26.csv")
    bars = pd.read_csv(shared_data / "ohlcv" / "lean_SPX-index_1m_2021-01-04_2023-07-03.csv")
    at = "2021-01-04 15:00:00"
    spot = float(bars[bars.iloc[:, 0] == at].close.iloc[0])
    chain, times = rc.lean_minute(spx, spot, at)
    ch = oa.enrich(chain, cfg, times=times)
    assert ch.exercise_style == "european"
    fit, sq = _fit(chain, times, cfg)
    _assert_surface(fit, sq, f"SPX {at}")
    assert all(s.status == "TOO_FEW_QUOTES" for s in fit.slices if s.points < surface.MIN_POINTS)


def test_iv_rank_uses_conventions() -> None:
    hist = np.array([0.1, 0.2, 0.3, np.nan])
    assert oa.iv_rank_percentile(0.25, hist) == (cv.iv_rank(0.25, hist), cv.iv_percentile(0.25, hist), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(oa.iv_rank_percentile(0.2, np.array([]))[0])


def test_responses_say_style_carry_and_exclusions(shared_data: Path) -> None:
    """The proto responses of the SPXW day carry what the domain computed (style, model, carry,
    the spot time's absence, exclusions, price source, slice status)."""
    from aiots.services.analytics import conversions as conv

    chain, times = rc.spxw(shared_data, STALE_DAY)
    ch = oa.enrich(chain, CFG, times=times)
    a = oa.analyze(ch, CFG, np.array([0.2, 0.3]))
    resp = conv.analytics_to_proto(a, ch)
    assert (resp.exercise_style, resp.pricing_model) == ("european", "black-scholes-merton")
    assert not resp.HasField("spot_as_of") and not resp.spot_in_sync and math.isnan(resp.spot_lag_seconds)
    (e,) = resp.expiries
    assert e.implied_dividend_yield == 0.0  # deprecated: no longer filled
    assert e.forward_source == "put_call_parity" and e.implied_carry == pytest.approx(ch.carry[e.expiry])
    assert {x.reason: x.count for x in e.excluded}["STALE_LAST"] == 15
    assert e.quotes_used == int(ch.fit_ok.sum())
    assert resp.gex_smile_filled == ch.gex_smile_filled > 0
    full = conv.chain_to_proto(ch)
    assert full.exercise_style == "european"
    sources = {c.price_source for c in full.contracts}
    assert sources <= {"quote", "last", ""} and "quote" in sources
    stale = [c for c in full.contracts if c.iv_reason == "STALE_LAST"]
    assert len(stale) == 15 and all(c.price_source == "" and math.isnan(c.mid) for c in stale)
    quotes = oa.surface_quotes(ch, CFG.rate)
    fit = surface.fit_surface(quotes)
    k = np.linspace(-0.2, 0.2, 5)
    t = np.array([s.t for s in fit.ok])
    surf = conv.surface_to_proto("SPX", ch.as_of_ns, fit, k, t, surface.surface_grid(fit.slices, k, t), ch, quotes)
    assert surf.parametrization == "svi" and surf.exercise_style == "european"
    assert [s.status for s in surf.slices] == ["OK"] and len(surf.grid) == 5
    assert {x.reason for x in surf.excluded} >= {"STALE_LAST", "ONE_SIDED"}
