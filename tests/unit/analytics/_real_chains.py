"""Real chains from ../shared/data (see its PROVENANCE.md) as storage ``OptionChain`` objects.

Only reshaping: prices, sizes and times are the files' own. Times are converted with
``aiots.core.conventions`` (New York wall time -> ns UTC).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from aiots.core import conventions as cv
from aiots.services.analytics.options_analytics import ChainTimes
from aiots.services.storage.queries import OptionChain

SPXW_FILE = "options/SPXW_options_eod_2018-01-02_2018-02-28.csv"
#: the rate the SPXW tests use (3-month T-bill, Jan-Feb 2018, about 1.5%)
SPXW_RATE = 0.015


def _ny_ns(text: pd.Series) -> np.ndarray:
    """Naive New York wall-clock strings -> int64 ns UTC (NaT -> 0)."""
    ts = pd.to_datetime(text, errors="coerce").dt.tz_localize(cv.NY, ambiguous="NaT", nonexistent="NaT")
    return np.asarray(ts.dt.tz_convert("UTC").astype("int64").where(ts.notna(), 0), dtype=np.int64)


def _utc_ns(text: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(text, errors="coerce", utc=True)
    return np.asarray(ts.astype("int64").where(ts.notna(), 0), dtype=np.int64)


def _chain(d: pd.DataFrame, underlying: str, ts: np.ndarray, spot: float, oi_day: str) -> OptionChain:
    n = len(d)
    return OptionChain(
        underlying=underlying,
        occ=[str(o) for o in d.option_symbol],
        expiry=pd.to_datetime(d.expiration).to_numpy().astype("datetime64[D]"),
        strike=d.strike.to_numpy(float),
        right=d.option_type.to_numpy().astype("<U1"),
        bid=d.bid.to_numpy(float),
        ask=d.ask.to_numpy(float),
        last=d["last"].to_numpy(float) if "last" in d else np.full(n, np.nan),
        volume=d.volume.to_numpy(float) if "volume" in d else np.zeros(n),
        open_interest=d.open_interest.to_numpy(float) if "open_interest" in d else np.zeros(n),
        oi_as_of=np.full(n, np.datetime64(oi_day, "D")),
        ts=ts,
        underlying_price=np.full(n, spot),
        spot=spot,
    )


def spxw_days(shared: Path) -> list[str]:
    df = pd.read_csv(shared / SPXW_FILE, encoding="utf-8-sig", usecols=["quote_date"])
    return sorted(df.quote_date.unique().tolist())


def spxw(shared: Path, day: str, *, drop_stale: bool = False) -> tuple[OptionChain, ChainTimes]:
    """One SPXW EOD day, quotes stamped at the session close. The file has no trade times, so every
    ``last`` has an unknown age, and no time for its underlying price (spot time unknown)."""
    df = pd.read_csv(shared / SPXW_FILE, encoding="utf-8-sig")
    d = df[df.quote_date == day]
    if drop_stale:
        d = d[(d.bid > 0) | (d.ask > 0)]
    close = cv.calendar().session(day).close_ns
    ch = _chain(d, "SPX", np.full(len(d), close, dtype=np.int64), float(d.underlying_price.iloc[0]), day)
    return ch, ChainTimes(spot_ts_ns=0, last_ts=np.zeros(len(d), dtype=np.int64))


def yfinance_snapshots(shared: Path, symbol: str) -> pd.DataFrame:
    name = next((shared / "options").glob(f"yfinance_{symbol}_chain-snapshots_*.csv.gz"))
    return pd.read_csv(name)


def yfinance(df: pd.DataFrame, commit: str) -> tuple[OptionChain, ChainTimes]:
    """One yfinance snapshot: quote time = ``snapshot_max_last_trade_utc`` (the best estimate of the
    delayed quotes' time), last-trade times from ``last_trade_utc``, spot time ``spot_fetched_et``."""
    d = df[df.snapshot_commit_et == commit]
    q_ts = _utc_ns(d.snapshot_max_last_trade_utc)
    day = str(d.quote_date.iloc[0])
    ch = _chain(d, str(d.underlying.iloc[0]), q_ts, float(d.underlying_price.iloc[0]), day)
    spot_ts = int(_ny_ns(d.spot_fetched_et.iloc[:1])[0])
    return ch, ChainTimes(spot_ts_ns=spot_ts, last_ts=_utc_ns(d.last_trade_utc))


def lean_minute(quotes: pd.DataFrame, spot: float, at: str) -> tuple[OptionChain, ChainTimes]:
    """Lean 1-minute quote bars at bar start ``at`` (New York): each contract's closing bid/ask of
    that minute (an empty side means no quote, kept as NaN), stamped at the bar's end."""
    d = quotes[quotes.datetime == at].copy()
    d = d.rename(columns={"bid_close": "bid", "ask_close": "ask"})
    end = int(_ny_ns(pd.Series([at]))[0]) + cv.NS_PER_MIN
    day = at[:10]
    ch = _chain(d, str(d.underlying.iloc[0]), np.full(len(d), end, dtype=np.int64), spot, day)
    return ch, ChainTimes(spot_ts_ns=end, last_ts=None)


def ny_date(at: str) -> dt.date:
    return dt.date.fromisoformat(at[:10])
