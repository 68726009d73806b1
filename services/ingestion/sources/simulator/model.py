"""The simulator's market model: prices, volatility, volume and the listed option chain.

Pure NumPy/maths, no DBN and no I/O. Time is the XNYS calendar of :mod:`aiots.core.conventions`:

- Variance accrues in *variance time*: each session carries exactly ``1/252`` year of variance,
  ``1 - EXT_VARIANCE_SHARE`` of it spread over regular hours and the rest over pre/post-market
  (closed days and nights carry none). So the close-to-close volatility of the simulated bars is
  the model's volatility, whatever the session length (early closes too).
- Volatility: log-volatility mean-reverts (Ornstein-Uhlenbeck, rate ``KAPPA`` per year) to the
  symbol's long-run level, plus rare jumps. The quoted ATM implied vol of an expiry is
  ``IV_PREMIUM`` x the root of the variance expected over its life (the OU term structure); so
  the 20-day realised / 30-day implied ratio is near ``1 / IV_PREMIUM``.
- Volume: ``Profile.adv`` shares per session, over regular minutes on a U-shaped curve times a
  mean-one lognormal factor per minute (``VOLUME_NOISE_SD``, measured on real 1-minute bars), plus
  ``EXT_VOLUME_SHARE`` in the extended hours. Seeded 1-minute bars and live trades use the same curve.
- Listed chain: the real expiry schedule (``listed_expiries``), strikes around spot on the usual grid.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv

FloatArray = npt.NDArray[np.float64]

IV_PREMIUM = 1.08  # implied over expected realised volatility (the variance risk premium)
KAPPA = 4.0  # mean-reversion rate of log-volatility, per year
ETA = 0.6  # volatility of log-volatility, per sqrt(year)
JUMPS_PER_YEAR = 2.0
JUMP_SD = 0.025  # log-return standard deviation of a jump
EXT_VARIANCE_SHARE = 0.10  # share of a session's variance in pre/post-market (and the overnight gap)
EXT_VOLUME_SHARE = 0.05  # share of a session's volume traded in pre/post-market
# Standard deviation of the log of a regular minute's volume around the U curve (a mean-one lognormal).
# Measured on the shared real 1-minute bars: 12-14 % of regular minutes trade at least 1.5x their
# 20-minute average (SPY 2024-02..05 14.4 %, NVDA 2024-05..06 13.3 %, AAPL/AMZN/GOOG/META 2026-03
# 11.3-14.0 %); 0.45 gives 13 %, the 0.2 used before gave 2.8 % (and the Poisson trade count alone
# almost never), so volume-confirmed breakouts were five times rarer than in real markets.
VOLUME_NOISE_SD = 0.45
TRADE_SIZES = np.array([100, 200, 300, 400])  # shares; mean 250
MEAN_TRADE_SIZE = float(TRADE_SIZES.mean())
STRIKES_EACH_SIDE = 8
WEEKLY_HORIZON_DAYS = 35  # weeklies/dailies listed up to 5 weeks out
DAILY_EXPIRIES = 5  # daily-expiry roots: the next 5 dailies (weeklies/monthlies beyond)
MONTHLIES = 3


@dataclass(frozen=True)
class Profile:
    """A simulated underlying: start price (dollars), long-run annual vol, average daily volume (shares)."""

    price: float
    vol: float
    adv: float


PROFILES: dict[str, Profile] = {
    "AAPL": Profile(190.0, 0.25, 6e6),
    "GOOGL": Profile(150.0, 0.28, 4e6),
    "MSFT": Profile(420.0, 0.22, 4e6),
    "AMZN": Profile(185.0, 0.30, 5e6),
    "TSLA": Profile(210.0, 0.55, 8e6),
    "NVDA": Profile(120.0, 0.50, 9e6),
    "META": Profile(500.0, 0.35, 3e6),
    "SPY": Profile(540.0, 0.14, 12e6),
    "QQQ": Profile(465.0, 0.18, 8e6),
}
DEFAULT_PROFILE = Profile(100.0, 0.30, 3e6)


def profile(symbol: str) -> Profile:
    return PROFILES.get(symbol, DEFAULT_PROFILE)


def symbol_rng(seed: int, symbol: str, anchor: dt.date, stream: int = 0) -> np.random.Generator:
    """A reproducible generator per (seed, symbol, anchor session, stream)."""
    return np.random.default_rng([seed, zlib.crc32(symbol.encode()), anchor.toordinal(), stream])


# --- time -------------------------------------------------------------------------------------
def session_seconds(s: cv.Session) -> tuple[float, float]:
    """(regular, extended) seconds of a session (extended = pre-market + post-market)."""
    regular = (s.close_ns - s.open_ns) / cv.NS_PER_S
    extended = (s.open_ns - s.pre_open_ns + s.post_close_ns - s.close_ns) / cv.NS_PER_S
    return regular, extended


def variance_years(s: cv.Session, phase: str, seconds: float) -> float:
    """Variance time (years) carried by ``seconds`` of ``phase`` in session ``s``."""
    regular, extended = session_seconds(s)
    day = 1.0 / cv.SESSIONS_PER_YEAR
    if phase == "regular":
        return day * (1.0 - EXT_VARIANCE_SHARE) * seconds / regular
    if phase in ("pre", "post"):
        return day * EXT_VARIANCE_SHARE * seconds / extended
    return 0.0


def volume_curve(minutes: FloatArray, n: int = cv.MINUTES_PER_REGULAR_SESSION) -> FloatArray:
    """Relative volume at regular minute 0..n-1 of a session (U shape, mean 1 over the session)."""
    x = minutes / max(n - 1, 1)
    w = 1.0 + 2.2 * np.exp(-x / 0.06) + 1.4 * np.exp(-(1 - x) / 0.08)
    full = np.arange(n, dtype=np.float64) / max(n - 1, 1)
    mean = float(np.mean(1.0 + 2.2 * np.exp(-full / 0.06) + 1.4 * np.exp(-(1 - full) / 0.08)))
    return np.asarray(w / mean, dtype=np.float64)


def volume_noise(rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` mean-one lognormal factors of a minute's volume (``VOLUME_NOISE_SD`` in logs)."""
    sd = VOLUME_NOISE_SD
    return np.asarray(rng.lognormal(-0.5 * sd * sd, sd, n), dtype=np.float64)


def trade_rate(p: Profile, s: cv.Session, phase: str, ts_ns: int) -> float:
    """Expected trades per second at ``ts_ns`` (regular: the U curve; extended: flat, small)."""
    regular, extended = session_seconds(s)
    n_min = max(round(regular / 60), 1)
    if phase == "regular":
        minute = min(max((ts_ns - s.open_ns) / cv.NS_PER_MIN, 0.0), n_min - 1)
        per_min = p.adv * (1 - EXT_VOLUME_SHARE) * (n_min / cv.MINUTES_PER_REGULAR_SESSION) / n_min
        return float(per_min * volume_curve(np.array([minute]), n_min)[0] / 60.0 / MEAN_TRADE_SIZE)
    if phase in ("pre", "post"):
        return p.adv * EXT_VOLUME_SHARE / extended / MEAN_TRADE_SIZE
    return 0.0


# --- volatility -------------------------------------------------------------------------------
def expected_variance(sigma: float, long_run: float, horizon_years: float) -> float:
    """Average variance expected over ``horizon_years`` when vol ``sigma`` reverts to ``long_run``."""
    h = max(horizon_years, 1e-6)
    v, vbar = sigma * sigma, long_run * long_run
    decay = (1.0 - math.exp(-KAPPA * h)) / (KAPPA * h)
    return vbar + (v - vbar) * decay + JUMPS_PER_YEAR * JUMP_SD * JUMP_SD


def atm_iv(sigma: float, long_run: float, t_years: float) -> float:
    """Quoted ATM implied vol for an expiry ``t_years`` away."""
    return IV_PREMIUM * math.sqrt(expected_variance(sigma, long_run, t_years))


def smile_iv(atm: FloatArray | float, k_over_f: FloatArray, t_years: FloatArray) -> FloatArray:
    """IV on a smile: negative skew and curvature in log-moneyness, flattening with maturity."""
    m = np.log(k_over_f)
    sq = np.sqrt(np.maximum(t_years, 1 / 365) / 0.25)
    return np.asarray(np.clip(atm * (1 - 0.35 * m / sq + 1.2 * m * m / sq), 0.05, 3.0), dtype=np.float64)


def strike_step(spot: float) -> float:
    return 1.0 if spot < 100 else 2.5 if spot < 250 else 5.0


# --- chain ------------------------------------------------------------------------------------
def chain_expiries(root: str, session: dt.date, before_close: bool = True) -> list[dt.date]:
    """Expiries listed on ``session``: the real schedule (holidays move to the previous session).

    Dailies (SPY, QQQ, ...): the next ``DAILY_EXPIRIES``; every root: the weeklies up to
    ``WEEKLY_HORIZON_DAYS`` ahead and the next ``MONTHLIES`` monthlies. Today's expiry is listed
    until its close (``before_close``).
    """
    first = session if before_close else session + dt.timedelta(days=1)
    near = cv.listed_expiries(root, first, session + dt.timedelta(days=WEEKLY_HORIZON_DAYS))
    out: set[dt.date] = set()
    dailies = [d for d in near if not cv.is_weekly_expiry(d)]
    out.update(dailies[:DAILY_EXPIRIES])
    out.update(d for d in near if d not in dailies)
    far = cv.listed_expiries(root, first, session + dt.timedelta(days=31 * (MONTHLIES + 1)))
    out.update([d for d in far if cv.is_monthly_expiry(d)][:MONTHLIES])
    return sorted(out)


def strikes_around(spot: float) -> list[float]:
    step = strike_step(spot)
    center = round(spot / step) * step
    return [center + step * k for k in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1) if center + step * k > 0]


@dataclass
class Contract:
    """One listed option contract."""

    occ: str
    instrument_id: int
    underlying: str
    expiry: dt.date
    strike: float
    right: str
    open_interest: int


@dataclass
class UnderlyingState:
    """Simulated state of one underlying: price (dollars), diffusive vol ``sigma`` (annual)."""

    symbol: str
    instrument_id: int
    profile: Profile
    price: float
    sigma: float
    prev_close: float  # the previous session's regular close
    contracts: list[Contract]
    seq: int = 0

    @property
    def vol(self) -> float:
        """Long-run annual vol."""
        return self.profile.vol

    @property
    def atm_iv(self) -> float:
        """30-day ATM implied vol quoted now."""
        return atm_iv(self.sigma, self.vol, 30 / 365)

    def advance(self, rng: np.random.Generator, years: float) -> float:
        """Move price and vol by ``years`` of variance time; returns the log return."""
        if years <= 0:
            return 0.0
        lv, lbar = math.log(self.sigma), math.log(self.vol)
        a = math.exp(-KAPPA * years)
        sd = ETA * math.sqrt((1 - a * a) / (2 * KAPPA))
        self.sigma = math.exp(lbar + (lv - lbar) * a + sd * float(rng.standard_normal()))
        ret = -0.5 * self.sigma**2 * years + self.sigma * math.sqrt(years) * float(rng.standard_normal())
        if rng.random() < JUMPS_PER_YEAR * years:
            ret += float(rng.normal(0.0, JUMP_SD))
        self.price *= math.exp(ret)
        return ret


#: the expiry instant of a date (the calendar's close), cached: every chain quote asks for every contract
_expiry_ns = functools.lru_cache(maxsize=4096)(cv.expiry_ns)


def chain_prices(
    price_fn: Any, st: UnderlyingState, now_ns: int, rate: float = cv.DEFAULT_RATE
) -> tuple[FloatArray, FloatArray]:
    """Model premiums (per share, >= 0.01) and IVs of ``st.contracts`` at ``now_ns``.

    T is ACT/365 to the expiry instant (the session close), floored at one hour.
    """
    K = np.array([c.strike for c in st.contracts], dtype=np.float64)
    expiries = np.array([_expiry_ns(c.expiry) for c in st.contracts], dtype=np.int64)
    T = np.maximum((expiries - now_ns) / cv.NS_PER_YEAR, 3600 / (365 * 86_400))
    # one ATM IV per expiry (a chain lists ~10 expiries over ~300 contracts)
    uniq, inverse = np.unique(T, return_inverse=True)
    atm = np.array([atm_iv(st.sigma, st.vol, float(t)) for t in uniq])[inverse]
    fwd = st.price * np.exp(rate * T)
    iv = smile_iv(atm, K / fwd, T)
    is_call = np.array([c.right == "C" for c in st.contracts])
    S = np.full(K.shape[0], st.price)
    px = np.asarray(price_fn(S, K, T, rate, iv, 0.0, is_call), dtype=np.float64)
    return np.maximum(px, 0.01), iv
