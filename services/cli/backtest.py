"""``aiots backtest``: replay real market data through the live signal engine with honest fills.

Example (real GOOG option quotes, 2015-12-23/24)::

    aiots backtest --bars ../shared/data/ohlcv/lean_GOOG_1m_2015-12-23_2015-12-28.csv \\
        --option-quotes ../shared/data/options-intraday/lean_GOOG_options_1m_quotes_2015-12-24.csv.gz \\
        --from 2015-12-23 --to 2015-12-24 --json goog.json --report goog.html

Without ``--option-quotes`` for a symbol its premiums are modelled (labelled ``modelled``).
Exit codes: 0 ok, 1 bad input (one line naming the file, row and column).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from aiots.core.conventions import InvalidSymbol, normalize_ticker

console = Console(stderr=True)


def _date(_ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param=param) from None


@click.command(name="backtest")
@click.option(
    "--bars",
    "bars",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="Underlying bars: normalised OHLCV CSV (1-minute or daily, .gz ok) or DBN ohlcv. Repeatable.",
)
@click.option(
    "--option-quotes",
    "option_quotes",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Intraday option quote-bar CSV (options-intraday schema). Repeatable.",
)
@click.option(
    "--chains",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Chain snapshots (normalised options schema): the IV of modelled premiums. Repeatable.",
)
@click.option("--config", type=click.Path(dir_okay=False), help="strategies.yaml (default: the packaged one).")
@click.option("--symbols", default="", help="Comma-separated symbols to trade (default: all in --bars).")
@click.option("--from", "date_from", callback=_date, help="First New York date traded (earlier bars only warm up).")
@click.option("--to", "date_to", callback=_date, help="Last New York date traded (inclusive).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    help="KEY=VALUE over a dotted strategies.yaml key on top of --config (e.g. selection.dte_min=0). Repeatable.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the null model and the bootstrap.")
@click.option("--iv", "iv", multiple=True, help="SYMBOL=IV for modelled premiums (e.g. SPY=0.15). Repeatable.")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("--report", "html_out", type=click.Path(dir_okay=False), help="Write a self-contained HTML report here.")
@click.option(
    "--walk-forward",
    "folds",
    type=click.IntRange(min=2),
    default=None,
    help="Anchored walk-forward with this many date folds (out-of-sample scoring).",
)
@click.option(
    "--search",
    multiple=True,
    help="KEY=V1,V2 over a dotted strategies.yaml key, for --walk-forward (e.g. cooldown_bars=15,30). Repeatable.",
)
@click.option(
    "--min-trades",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="In-sample trades a parameter set needs to be chosen.",
)
@click.option(
    "--refit-calibration",
    "refit",
    type=click.Path(dir_okay=False),
    help="Fit the confidence calibration walk-forward on this run's closed trades, report it out of sample "
    "(report key calibration_refit) and write the artifact here (e.g. services/signals/calibration.json).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes: symbols replay in parallel (the report is the same for any count).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary table.")
def cli(
    bars: tuple[str, ...],
    option_quotes: tuple[str, ...],
    chains: tuple[str, ...],
    config: str | None,
    symbols: str,
    date_from: dt.date | None,
    date_to: dt.date | None,
    overrides: tuple[str, ...],
    seed: int,
    iv: tuple[str, ...],
    json_out: str,
    html_out: str | None,
    folds: int | None,
    search: tuple[str, ...],
    min_trades: int,
    refit: str | None,
    workers: int,
    quiet: bool,
) -> None:
    """Backtest the built-in strategies on bars (and option quotes) with ask/bid fills and fees."""
    from dataclasses import replace

    from pydantic import ValidationError

    from aiots.services.backtest.api import BacktestInputs, live_settings, load, run_backtest
    from aiots.services.backtest.html import render
    from aiots.services.backtest.readers import DataFileError
    from aiots.services.backtest.walkforward import apply_overrides, parse_search, walk_forward
    from aiots.services.common.settings import get_settings

    try:
        syms = tuple(normalize_ticker(s, "--symbols") for s in symbols.split(",") if s.strip())
    except InvalidSymbol as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from None
    if date_from and date_to and date_from > date_to:
        raise click.BadParameter(f"--from {date_from} is after --to {date_to}", param_hint="--from")
    ivs: dict[str, float] = {}
    for item in iv:
        k, _, v = item.partition("=")
        try:
            ivs[normalize_ticker(k, "--iv")] = float(v)
        except (ValueError, InvalidSymbol):
            raise click.BadParameter(f"{item!r}: expected SYMBOL=IV, e.g. SPY=0.15", param_hint="--iv") from None
        if not 0.01 <= ivs[k.strip().upper()] <= 5.0:
            raise click.BadParameter(f"{item!r}: IV must be in 0.01..5 (0.15 = 15%)", param_hint="--iv")
    base = live_settings(get_settings())  # the live services' execution model and dividend yields
    settings = replace(base, model=replace(base.model, iv_by_symbol=ivs), workers=workers)
    inputs = BacktestInputs(bars, option_quotes, chains, config, syms, date_from, date_to, seed, settings)
    if search and not folds:
        raise click.BadParameter("needs --walk-forward N", param_hint="--search")
    try:
        grid = parse_search(search)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--search") from None
    try:
        data = load(inputs)
        sets = parse_search(overrides)
        if any(len(v) != 1 for v in sets.values()):
            raise ValueError("--set takes one value per key (KEY=VALUE)")
        data.config = apply_overrides(data.config, {k: v[0] for k, v in sets.items()})
        for key, values in grid.items():
            for v in values:
                apply_overrides(data.config, {key: v})
    except (DataFileError, ValueError, ValidationError, OSError) as exc:
        raise click.ClickException(str(exc).splitlines()[0] if isinstance(exc, ValidationError) else str(exc)) from None
    if quiet:
        report = run_backtest(inputs, data=data)
    else:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("bars"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as prog:
            tasks: dict[str, object] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=total)
                prog.update(tasks[stage], completed=done)  # type: ignore[arg-type]

            report = run_backtest(inputs, progress, data=data)
            if folds:
                report["walk_forward"] = walk_forward(inputs, data, grid, folds, min_trades, progress)
    if quiet and folds:
        report["walk_forward"] = walk_forward(inputs, data, grid, folds, min_trades)
    if refit:
        from aiots.services.backtest.calibration import refit_calibration

        report["calibration_refit"], artifact = refit_calibration(report)
        if artifact is not None:
            Path(refit).write_text(artifact.to_json())
    Path(json_out).write_text(json.dumps(report, indent=1))
    if html_out:
        Path(html_out).write_text(render(report))
    if not quiet:
        _print_summary(report)


def _print_summary(report: dict[str, object]) -> None:
    rows = report["by_strategy"]
    assert isinstance(rows, list)
    t = Table(title="Backtest by strategy (P&L from fills, after fees)")
    for c in ("strategy", "priced from", "signals", "trades", "hit rate", "95% CI", "expectancy %", "profit factor"):
        t.add_column(c)

    def f(x: object) -> str:
        return "–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))

    for r in rows:
        ci = r["hit_rate_ci"]
        t.add_row(
            r["strategy"],
            r["priced_from"],
            str(r["signals"]),
            str(r["n"]),
            f(r["hit_rate"]),
            f"{f(ci[0])}..{f(ci[1])}",
            f(r["expectancy_pct"]),
            f(r["profit_factor"]),
        )
    Console().print(t)
    nm = report["null_model"]
    assert isinstance(nm, dict)
    Console().print(
        f"null model ({nm.get('priced_from')}): expectancy {f(nm.get('expectancy_pct'))} %, "
        f"strategies minus null {f(nm.get('difference_pct'))} % (95% CI {nm.get('difference_ci')})"
    )
    cr = report.get("calibration_refit")
    if isinstance(cr, dict):
        Console().print(
            f"calibration refit ({cr.get('priced_from')}, walk-forward, out of sample on {cr.get('n_oos')} trades): "
            f"Brier {f(cr.get('brier'))} vs base rate {f(cr.get('brier_base_rate'))}, ECE {f(cr.get('ece'))}; "
            f"uncalibrated p_model Brier {f(cr.get('raw_brier'))}; {cr.get('note', '')}"
        )
