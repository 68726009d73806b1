"""Seeded history: the daily path the simulator starts from, and its stored bars and ATM IV.

The path is a function of (seed, symbol, anchor session, number of sessions) only, so the
simulator that seeds the database and the one that runs live (separate instances) agree: the live
market opens from the last seeded close at the last seeded volatility. Sessions come from the XNYS
calendar (no bars on closed days; early closes have 210 regular minutes). Daily bars are stamped
00:00 UTC of the session date (as Databento's ``ohlcv-1d``); 1-minute bars cover regular hours
of the last ``sessions`` sessions, and the daily high/low/volume are those of the minute path.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import databento_dbn as _dbn
import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv
from aiots.services.ingestion.normalize import SOURCE_SIMULATOR, Batch, Normalizer
from aiots.services.ingestion.sources.simulator import model as m

if TYPE_CHECKING:
    from aiots.services.ingestion.sources.simulator.records import MarketSimulator

dbn: Any = _dbn
SCALE = 1_000_000_000  # DBN fixed point
PUBLISHER_EQ = 1
RTYPE_OHLCV_1M = 33
RTYPE_OHLCV_1D = 35
HISTORY_DAYS = 252
IV_NOISE = 0.02  # relative day-to-day noise of the recorded ATM IV
OHLCV_DTYPE = np.dtype(dbn.OHLCVMsg._dtypes)


@dataclass(frozen=True)
class DailyPath:
    """Per session: regular open/close (dollars) and the diffusive vol that day."""

    days: list[dt.date]
    opens: npt.NDArray[np.float64]
    closes: npt.NDArray[np.float64]
    sigmas: npt.NDArray[np.float64]


def daily_path(seed: int, symbol: str, anchor: dt.date, n: int = HISTORY_DAYS) -> DailyPath:
    """The ``n`` sessions before ``anchor``: overnight gap + regular-hours return per session."""
    days = cv.calendar().previous_sessions(anchor, n)
    p = m.profile(symbol)
    rng = m.symbol_rng(seed, symbol, anchor, 0)
    year = 1.0 / cv.SESSIONS_PER_YEAR
    a = math.exp(-m.KAPPA * year)
    sd = m.ETA * math.sqrt((1 - a * a) / (2 * m.KAPPA))
    lbar = math.log(p.vol)
    lv = lbar + rng.normal(0.0, m.ETA / math.sqrt(2 * m.KAPPA))
    opens, closes, sigmas = np.empty(len(days)), np.empty(len(days)), np.empty(len(days))
    price = p.price
    for k in range(len(days)):
        lv = lbar + (lv - lbar) * a + sd * rng.standard_normal()
        sig = math.exp(lv)
        var = sig * sig * year
        gap = -0.5 * var * m.EXT_VARIANCE_SHARE + math.sqrt(var * m.EXT_VARIANCE_SHARE) * rng.standard_normal()
        if rng.random() < m.JUMPS_PER_YEAR * year:
            gap += rng.normal(0.0, m.JUMP_SD)
        day = -0.5 * var * (1 - m.EXT_VARIANCE_SHARE) + math.sqrt(var * (1 - m.EXT_VARIANCE_SHARE)) * rng.normal()
        opens[k] = price * math.exp(gap)
        closes[k] = price = opens[k] * math.exp(day)
        sigmas[k] = sig
    return DailyPath(days, opens, closes, sigmas)


def start_state(seed: int, symbol: str, anchor: dt.date, n: int = HISTORY_DAYS) -> tuple[float, float]:
    """(price, sigma) the simulator opens ``anchor`` with: the last seeded close and vol."""
    path = daily_path(seed, symbol, anchor, n)
    if not path.days:
        p = m.profile(symbol)
        return p.price, p.vol
    return float(path.closes[-1]), float(path.sigmas[-1])


def _ohlcv_array(rtype: int, iid: int, ts: Any, o: Any, h: Any, lo: Any, c: Any, v: Any) -> Any:
    a = np.zeros(len(ts), dtype=OHLCV_DTYPE)
    a["length"] = OHLCV_DTYPE.itemsize // 4
    a["rtype"] = rtype
    a["publisher_id"] = PUBLISHER_EQ
    a["instrument_id"] = iid
    a["ts_event"] = ts
    for name, x in (("open", o), ("high", h), ("low", lo), ("close", c)):
        a[name] = np.round(np.asarray(x) * 100).astype(np.int64) * (SCALE // 100)
    a["volume"] = np.asarray(v).astype(np.uint64)
    return a


def _minute_session(
    rng: np.random.Generator, s: cv.Session, o: float, c: float, sigma: float, adv: float
) -> tuple[npt.NDArray[np.int64], Any, Any, Any, Any, Any]:
    """Regular-hours 1-minute bars from ``o`` to ``c`` (a Brownian bridge) with U-shaped volume."""
    n = int((s.close_ns - s.open_ns) // cv.NS_PER_MIN)
    sd = sigma * math.sqrt((1 - m.EXT_VARIANCE_SHARE) / cv.SESSIONS_PER_YEAR / n)
    walk = np.cumsum(rng.normal(0.0, sd, n))
    path = math.log(o) + walk - np.linspace(1.0 / n, 1.0, n) * (walk[-1] - math.log(c / o))
    close = np.exp(path)
    open_ = np.concatenate([[o], close[:-1]])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sd * 0.5, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sd * 0.5, n)))
    regular_share = (1 - m.EXT_VOLUME_SHARE) * n / cv.MINUTES_PER_REGULAR_SESSION
    noise = m.volume_noise(rng, n)
    vol = np.round(adv * regular_share / n * m.volume_curve(np.arange(n, dtype=np.float64), n) * noise)
    ts = s.open_ns + np.arange(n, dtype=np.int64) * cv.NS_PER_MIN
    return ts, open_, high, low, close, vol


def history_batches(sim: MarketSimulator, sessions: int) -> list[Batch]:
    """Seeded history as normalised batches: daily bars for ``sim.history_days`` sessions before
    the anchor, 1-minute bars (regular hours) for the last ``sessions`` of them, daily ATM IV."""
    cal = cv.calendar()
    days = sim.history_days
    norm = Normalizer(SOURCE_SIMULATOR, dataset="SIM")
    out: list[Batch] = []
    for st in sim.state.values():
        norm.map_id(st.instrument_id, st.symbol)
        path = daily_path(sim.seed, st.symbol, sim.anchor, days)
        rng = m.symbol_rng(sim.seed, st.symbol, sim.anchor, 1)
        n_days = len(path.days)
        d_h, d_l, d_v = np.empty(n_days), np.empty(n_days), np.empty(n_days)
        minutes: list[tuple[Any, ...]] = []
        for k, day in enumerate(path.days):
            s = cal.session(day)
            bars = _minute_session(rng, s, path.opens[k], path.closes[k], path.sigmas[k], st.profile.adv)
            d_h[k], d_l[k] = float(bars[2].max()), float(bars[3].min())
            d_v[k] = float(bars[5].sum()) + round(st.profile.adv * m.EXT_VOLUME_SHARE)
            if k >= n_days - sessions:
                minutes.append(bars)
        ts_d = np.array([cv.datetime_to_ns(dt.datetime(d.year, d.month, d.day, tzinfo=cv.UTC)) for d in path.days])
        out.append(
            norm.array(
                RTYPE_OHLCV_1D,
                _ohlcv_array(RTYPE_OHLCV_1D, st.instrument_id, ts_d, path.opens, d_h, d_l, path.closes, d_v),
            )
        )
        if minutes:
            cols = [np.concatenate([b[i] for b in minutes]) for i in range(6)]
            out.append(norm.array(RTYPE_OHLCV_1M, _ohlcv_array(RTYPE_OHLCV_1M, st.instrument_id, *cols)))
        iv = np.array([m.atm_iv(float(sg), st.vol, 30 / 365) for sg in path.sigmas])
        iv = np.clip(iv * np.exp(rng.normal(0.0, IV_NOISE, n_days)), 0.05, 3.0)
        b = Batch()
        b.rows["atm_iv_history"].extend(
            (st.symbol, d, float(v), float(c)) for d, v, c in zip(path.days, iv, path.closes, strict=True)
        )
        out.append(b)
    meta = Batch()
    meta.rows["instruments"].extend(norm.instrument_rows())
    out.insert(0, meta)
    return out
