"""``aiots greeks S K T r sigma [q]``: price and Greeks of one option, computed locally.

Uses the same pricing code as AnalyticsService.PriceOptions (aiots.services.analytics.pricing over the
compiled aiots.core.options). S, K in dollars; T in years (ACT/365); r, q continuous (0.05 = 5%);
sigma annual (0.25 = 25%). Greeks in trader units: delta per $1, gamma per $1, theta $/calendar day,
vega $/vol point, rho and epsilon $/1%. American Greeks have no closed forms: only the first-order
ones are shown. Money per contract = value x 100.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, cast

import click

if TYPE_CHECKING:  # the pricing module (NumPy, the compiled core) loads only when a price is asked for
    from aiots.services.analytics.pricing import AmericanMethod

#: the values of ``aiots.services.analytics.pricing.AmericanMethod`` (a test keeps them equal)
METHODS = ("bjerksund_stensland_2002", "baw", "binomial")
FIRST_ORDER = ("delta", "gamma", "theta", "vega", "rho", "epsilon")


@click.command(name="greeks", context_settings={"ignore_unknown_options": True})
@click.argument("spot", type=float)
@click.argument("strike", type=float)
@click.argument("t", metavar="T", type=float)
@click.argument("rate", type=float)
@click.argument("sigma", type=float)
@click.argument("q", type=float, default=0.0, required=False)
@click.option("--call/--put", "is_call", default=True, help="Call (default) or put.")
@click.option("--american/--european", default=False, help="Exercise style (listed US equity options: American).")
@click.option("--method", type=click.Choice(METHODS), default=METHODS[0], show_default=True, help="American pricer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cli(
    spot: float,
    strike: float,
    t: float,
    rate: float,
    sigma: float,
    q: float,
    is_call: bool,
    american: bool,
    method: str,
    as_json: bool,
) -> None:
    """Price one option and its Greeks: S K T r sigma [q]."""
    american_method = cast("AmericanMethod", method)  # click.Choice(METHODS) checked it
    result = price_one(spot, strike, t, rate, sigma, q, is_call=is_call, american=american, method=american_method)
    if result["reason"]:
        raise click.ClickException(
            f"cannot price: {result['reason']} (S={spot}, K={strike}, T={t}, r={rate}, sigma={sigma}, q={q}); "
            "S, K, T and sigma must be positive and finite"
        )
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=False, default=_none_nan))
        return
    _print(result)


def _none_nan(x: object) -> object:
    return None


def price_one(
    spot: float,
    strike: float,
    t: float,
    rate: float,
    sigma: float,
    q: float,
    *,
    is_call: bool,
    american: bool,
    method: AmericanMethod = "bjerksund_stensland_2002",
) -> dict[str, object]:
    """{"price", "greeks": {name: value}, "reason", inputs...}; NaN Greeks become None."""
    import numpy as np

    from aiots.services.analytics.pricing import ContractBatch, price_batch

    def a(x: float) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([x], dtype=np.float64)

    batch = ContractBatch(
        spot=a(spot),
        strike=a(strike),
        t=a(t),
        rate=a(rate),
        q=a(q),
        vol=a(sigma),
        price=a(math.nan),
        is_call=np.array([is_call]),
        right_ok=np.array([True]),
        american=np.array([american]),
        dividends=[()],
    )
    out = price_batch(batch, method=method)
    price = float(out.price[0])
    greeks = {k: (None if math.isnan(float(v[0])) else float(v[0])) for k, v in out.greeks.items()}
    return {
        "spot": spot,
        "strike": strike,
        "time_to_expiry": t,
        "rate": rate,
        "volatility": sigma,
        "dividend_yield": q,
        "right": "call" if is_call else "put",
        "style": "american" if american else "european",
        "method": method if american else "black_scholes_merton",
        "price": None if math.isnan(price) else price,
        "price_per_contract": None if math.isnan(price) else price * 100.0,
        "greeks": greeks,
        "reason": out.reasons[0],
    }


def _print(r: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    greeks = r["greeks"]
    assert isinstance(greeks, dict)
    t = Table(
        title=f"{r['style']} {r['right']} S={r['spot']} K={r['strike']} T={r['time_to_expiry']} "
        f"r={r['rate']} σ={r['volatility']} q={r['dividend_yield']} ({r['method']})",
        caption="per share; x100 per contract",
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("unit")
    units = {
        "delta": "per $1", "gamma": "per $1", "theta": "$/day", "vega": "$/vol pt", "rho": "$/1% rate",
        "epsilon": "$/1% div",
    }  # fmt: skip
    t.add_row("price", f"{r['price']:.4f}", "$")
    for name, v in greeks.items():
        if v is None:
            continue
        t.add_row(name, f"{v:.6f}", units.get(name, "raw"))
    Console(soft_wrap=True).print(t)
