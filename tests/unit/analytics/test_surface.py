"""Raw-SVI fitter: exact recovery of known parameters, real SPXW chain fit, arbitrage checks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from aiots.services.analytics.surface import (
    SviParams,
    calendar_free,
    fit_slice,
    fit_surface,
    slice_iv,
    surface_grid,
)


def test_recovers_known_parameters() -> None:
    true = SviParams(a=0.02, b=0.1, rho=-0.4, m=0.05, sigma=0.15)
    k = np.linspace(-0.5, 0.4, 41)
    t = 0.5
    iv = np.sqrt(true.total_variance(k) / t)
    p = fit_slice(k, iv, t)
    assert np.max(np.abs(slice_iv(p, k, t) - iv)) < 1e-6
    for name in ("a", "b", "rho", "m", "sigma"):
        assert getattr(p, name) == pytest.approx(getattr(true, name), abs=1e-4)


def test_deterministic() -> None:
    rng = np.random.default_rng(3)
    k = np.linspace(-0.3, 0.3, 25)
    iv = 0.2 - 0.1 * k + 0.3 * k * k + rng.normal(0, 0.002, k.size)
    assert fit_slice(k, iv, 0.25) == fit_slice(k, iv, 0.25)


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


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_slice([0.0, 0.1], [0.2, 0.2], 0.5)
    with pytest.raises(ValueError, match="positive"):
        fit_slice(np.linspace(-1, 1, 10), np.full(10, 0.2), 0.0)
    assert fit_surface([("x", 0.5, np.array([np.nan] * 10), np.full(10, 0.2))]).slices == []


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
    assert s.rmse_vol_points < 0.6
    # The check is honest: free exactly when the dense-grid minimum of g is >= 0 (within 1e-9).
    assert s.butterfly_arbitrage_free == (s.min_density >= -1e-9)
    # Any arbitrage the fitter leaves is marginal (penalised in the objective).
    assert s.min_density > -5e-3


def test_batched_grid_objective_matches_per_candidate_lstsq() -> None:
    """The batched objective (normal equations, all slices padded into one call) agrees with the
    per-candidate ``lstsq`` objective, and a surface fit equals its slices fitted one by one."""
    from aiots.services.analytics import surface as sf

    rng = np.random.default_rng(7)
    slices = []
    for n, t in ((9, 0.1), (40, 0.5), (23, 1.2)):
        k = np.sort(rng.uniform(-0.6, 0.4, n))
        iv = 0.2 + 0.1 * k * k - 0.05 * k + rng.normal(0, 0.004, n)
        slices.append((f"s{n}", t, k, iv))
    cleaned = [sf._clean(k, iv, t) for _, t, k, iv in slices]
    width = max(k.size for k, _ in cleaned)
    ms = rng.uniform(-0.5, 0.3, 60)
    ls = np.log(rng.uniform(0.01, 1.5, 60))
    rows = [cleaned[i % 3] for i in range(60)]
    kb = np.array([np.pad(k, (0, width - k.size), constant_values=k[0]) for k, _ in rows])
    wb = np.array([np.pad(w, (0, width - w.size)) for _, w in rows])
    valid = np.array([np.arange(width) < k.size for k, _ in rows])
    got = sf._objective_batch(kb, wb, valid, ms, ls)
    want = np.array([sf._objective(k, w, float(m), float(s)) for (k, w), m, s in zip(rows, ms, ls, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-14)
    fit = fit_surface(slices)
    for (_, t, k, iv), s in zip(sorted(slices, key=lambda q: q[1]), fit.slices, strict=True):
        assert s.params == fit_slice(k, iv, t)
    assert fit_surface(slices) == fit  # deterministic
