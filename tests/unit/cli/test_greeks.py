"""`aiots greeks`: prices and Greeks against independent oracles (vollib for Black-Scholes-Merton,
QuantLib's finite-difference engine for American), through the real click command."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from aiots.services.cli.greeks import cli

vollib_bsm = pytest.importorskip("vollib.black_scholes_merton")
vollib_greeks = pytest.importorskip("vollib.black_scholes_merton.greeks.analytical")


def _run(*args: str) -> dict[str, object]:
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.output))


@pytest.mark.parametrize(
    ("s", "k", "t", "r", "sigma", "q", "flag"),
    [
        (100, 100, 0.5, 0.05, 0.2, 0.01, "c"),
        (190, 200, 0.25, 0.045, 0.3, 0.0, "p"),
        (50, 40, 1.5, 0.03, 0.45, 0.02, "c"),
    ],
)
def test_european_matches_vollib(s: float, k: float, t: float, r: float, sigma: float, q: float, flag: str) -> None:
    out = _run(*(str(x) for x in (s, k, t, r, sigma, q)), "--call" if flag == "c" else "--put", "--european")
    g = out["greeks"]
    assert isinstance(g, dict)
    assert out["price"] == pytest.approx(vollib_bsm.black_scholes_merton(flag, s, k, t, r, sigma, q), abs=1e-9)
    assert g["delta"] == pytest.approx(vollib_greeks.delta(flag, s, k, t, r, sigma, q), abs=1e-9)
    assert g["gamma"] == pytest.approx(vollib_greeks.gamma(flag, s, k, t, r, sigma, q), abs=1e-9)
    # vollib: theta per calendar day, vega and rho per 1 point (0.01)
    assert g["theta"] == pytest.approx(vollib_greeks.theta(flag, s, k, t, r, sigma, q), abs=1e-6)
    assert g["vega"] == pytest.approx(vollib_greeks.vega(flag, s, k, t, r, sigma, q), abs=1e-9)
    assert g["rho"] == pytest.approx(vollib_greeks.rho(flag, s, k, t, r, sigma, q), abs=1e-9)
    assert out["price_per_contract"] == pytest.approx(100 * float(out["price"]))  # type: ignore[arg-type]


def test_american_put_matches_quantlib_fd() -> None:
    ql = pytest.importorskip("QuantLib")
    s, k, t, r, sigma, q = 100.0, 110.0, 0.75, 0.05, 0.25, 0.0
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    expiry = today + round(t * 365)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(s)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Put, k), ql.AmericanExercise(today, expiry))
    opt.setPricingEngine(ql.FdBlackScholesVanillaEngine(proc, 800, 800))
    out = _run(*(str(x) for x in (s, k, t, r, sigma, q)), "--put", "--american", "--method", "binomial")
    assert out["price"] == pytest.approx(opt.NPV(), abs=5e-3)
    g = out["greeks"]
    assert isinstance(g, dict)
    assert g["delta"] == pytest.approx(opt.delta(), abs=5e-3)
    # early exercise premium: the American put is worth at least the European one
    eu = _run(*(str(x) for x in (s, k, t, r, sigma, q)), "--put", "--european")
    assert float(out["price"]) >= float(eu["price"])  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [["100", "100", "-1", "0.05", "0.2"], ["100", "0", "1", "0.05", "0.2"],
                                  ["100", "100", "1", "0.05", "nan"]])  # fmt: skip
def test_bad_input_is_one_clear_line(args: list[str]) -> None:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1
    assert "cannot price" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_table_output() -> None:
    res = CliRunner().invoke(cli, ["100", "100", "0.5", "0.05", "0.2", "--put", "--american"])
    assert res.exit_code == 0, res.output
    assert "american put" in res.output and "theta" in res.output and not math.isnan(1.0)


def test_method_choices_are_the_pricers_methods() -> None:
    from aiots.services.analytics.pricing import AMERICAN_METHODS
    from aiots.services.cli.greeks import METHODS

    assert METHODS == AMERICAN_METHODS
