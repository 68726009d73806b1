"""SVI surface: recovery of a known slice, real SPXW slices, arbitrage checks, status of unfit slices."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from aiots.services.analytics.surface import (
    SsviParams,
    SviParams,
    calendar_free,
    fit_surface,
    slice_iv,
    surface_grid,
)


def test_recovers_known_parameters() -> None:
    """IVs generated from a known butterfly-free eSSVI slice come back (raw-SVI form to 1e-3 vol)."""
    true = SsviParams(theta=0.02, rho=-0.4, psi=0.15)
    k = np.linspace(-0.5, 0.4, 41)
    t = 0.5
    iv = np.sqrt(true.total_variance(k) / t)
    (s,) = fit_surface([("x", t, k, iv)]).slices
    assert s.status == "OK" and s.butterfly_arbitrage_free
    assert np.max(np.abs(slice_iv(s.params, k, t) - iv)) < 1e-3
    # the eSSVI start is the raw-SVI form of the true slice
    assert s.ssvi is not None
    assert (s.ssvi.theta, s.ssvi.rho, s.ssvi.psi) == pytest.approx((0.02, -0.4, 0.15), abs=2e-3)
    raw = true.to_raw()
    assert np.allclose(raw.total_variance(k), true.total_variance(k), atol=1e-15)


def test_deterministic() -> None:
    rng = np.random.default_rng(3)
    k = np.linspace(-0.3, 0.3, 25)
    iv = 0.2 - 0.1 * k + 0.3 * k * k + rng.normal(0, 0.002, k.size)
    assert fit_surface([("x", 0.25, k, iv)]) == fit_surface([("x", 0.25, k, iv)])


def test_butterfly_arbitrage_detected() -> None:
    # Axel Vogt's example (Gatheral & Jacquier 2014): raw SVI with butterfly arbitrage.
    bad = SviParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)
    g = bad.density_factor(np.linspace(-1.5, 1.5, 601))
    assert float(g.min()) < 0
    good = SviParams(a=0.04, b=0.1, rho=-0.3, m=0.0, sigma=0.2)
    assert float(good.density_factor(np.linspace(-1.5, 1.5, 601)).min()) > 0


def test_calendar_check_and_grid() -> None:
    k = np.linspace(-0.4, 0.4, 21)
    p1 = SviParams(0.01, 0.1, -0.3, 0.0, 0.2)
    p2 = SviParams(0.03, 0.1, -0.3, 0.0, 0.2)
    fit = fit_surface(
        [("b", 1.0, k, np.sqrt(p2.total_variance(k))), ("a", 0.5, k, np.sqrt(p1.total_variance(k) / 0.5))]
    )
    assert [s.label for s in fit.slices] == ["a", "b"]
    assert fit.calendar_arbitrage_free
    crossing = list(reversed(fit.slices))
    assert not calendar_free([crossing[0], fit.slices[0].__class__(**{**crossing[1].__dict__, "t": 2.0})], k)
    g = surface_grid(fit.slices, np.array([0.0]), np.array([0.5, 0.75, 1.0]))
    w = g[:, 0] ** 2 * np.array([0.5, 0.75, 1.0])
    assert w[1] == pytest.approx((w[0] + w[2]) / 2, rel=1e-6)


def test_too_few_quotes_says_so() -> None:
    fit = fit_surface([("x", 0.5, np.array([0.0, 0.1]), np.array([0.2, 0.2]))])
    assert [(f.status, f.points) for f in fit.slices] == [("TOO_FEW_QUOTES", 2)]
    assert fit.ok == []
    fit = fit_surface([("x", 0.0, np.linspace(-1, 1, 10), np.full(10, 0.2))])
    assert fit.slices[0].status == "TOO_FEW_QUOTES" and "positive" in fit.slices[0].reason


def _spxw_slice(path: Path, quote_date: str, r: float) -> tuple[str, float, np.ndarray, np.ndarray]:
    """OTM Black IVs of one SPXW EOD snapshot (oracle: py_vollib's LBR), forward from put-call parity."""
    from py_vollib.black.implied_volatility import implied_volatility

    with path.open() as fh:
        rows = [row for row in csv.DictReader(fh) if row["quote_date"] == quote_date]
    expiry = rows[0]["expiration"]
    t = float((np.datetime64(expiry) - np.datetime64(quote_date)).astype(int)) / 365.0
    spot = float(rows[0]["underlying_price"])
    mids = {
        (row["option_type"], float(row["strike"])): (float(row["bid"]) + float(row["ask"])) / 2
        for row in rows
        if float(row["bid"]) > 0
    }
    both = sorted({k for c, k in mids if ("C", k) in mids and ("P", k) in mids}, key=lambda k: abs(k - spot))
    fwd = float(np.mean([k + math.exp(r * t) * (mids["C", k] - mids["P", k]) for k in both[:3]]))
    ks, ivs = [], []
    for (right, strike), mid in sorted(mids.items(), key=lambda kv: kv[0][1]):
        if (right == "P") != (strike < fwd):
            continue
        try:
            iv = implied_volatility(mid, fwd, strike, r, t, right.lower())
        except Exception:
            continue
        ks.append(math.log(strike / fwd))
        ivs.append(iv)
    return expiry, t, np.array(ks), np.array(ivs)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("quote_date", ["2018-01-02", "2018-02-06"])
def test_real_spxw_chain(shared_data: Path, quote_date: str) -> None:
    """Fit a real SPXW EOD slice; print RMSE and the butterfly figure (see .readme/analytics.md)."""
    path = shared_data / "options" / "SPXW_options_eod_2018-01-02_2018-02-28.csv"
    expiry, t, k, iv = _spxw_slice(path, quote_date, r=0.015)
    fit = fit_surface([(expiry, t, k, iv)])
    (s,) = fit.slices
    print(
        f"SPXW {quote_date} -> {expiry}: points={s.points} k=[{k.min():.3f},{k.max():.3f}] "
        f"rmse={s.rmse_vol_points:.3f} vol pts min g={s.min_density:.2e} "
        f"butterfly_free={s.butterfly_arbitrage_free} {s.params}"
    )
    assert s.points > 100
    assert s.status == "OK" and s.parametrization == "svi"
    assert s.rmse_vol_points < 0.6
    # no butterfly arbitrage: g(k) >= 0 on a dense grid well beyond the quotes (independent check)
    g = s.params.density_factor(np.linspace(k.min() - 2, k.max() + 2, 4001))
    assert s.butterfly_arbitrage_free and float(g.min()) >= 0
