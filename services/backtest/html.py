"""A self-contained HTML report (inline SVG, no scripts, nothing fetched at view time).

Plots per pricing source (real quotes and modelled premiums are never drawn on one axis): the
equity curve of a one-contract-per-signal account, the calibration diagram, the P&L histogram
and exits by reason; then the summary, per-strategy, per-symbol and null-model tables.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

W, H, PAD = 560, 240, 40


def _esc(x: object) -> str:
    return html.escape(str(x))


def _fmt(x: object, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}" if math.isfinite(x) else "–"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v, nd) for v in x) + "]"
    return _esc(x)


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _axes(title: str, xlabel: str, ylabel: str, ylo: float, yhi: float) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{_esc(title)}">',
        f'<text x="{W / 2}" y="14" text-anchor="middle" font-size="13" font-weight="bold">{_esc(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{PAD}" y1="20" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="11">{_esc(xlabel)}</text>',
        f'<text x="12" y="{H / 2}" font-size="11" transform="rotate(-90 12 {H / 2})" '
        f'text-anchor="middle">{_esc(ylabel)}</text>',
        f'<text x="{PAD - 4}" y="24" text-anchor="end" font-size="10">{ylo if False else _fmt(yhi)}</text>',
        f'<text x="{PAD - 4}" y="{H - PAD}" text-anchor="end" font-size="10">{_fmt(ylo)}</text>',
    ]


def equity_svg(pnl_usd: Sequence[float], title: str) -> str:
    eq = [0.0]
    for p in pnl_usd:
        eq.append(eq[-1] + p)
    lo, hi = min(eq), max(eq)
    if hi == lo:
        hi = lo + 1.0
    parts = _axes(title, "trade (exit order)", "cumulative P&L, $", lo, hi)
    n = max(1, len(eq) - 1)
    pts = " ".join(f"{_scale(i, 0, n, PAD, W - 10):.1f},{_scale(v, lo, hi, H - PAD, 20):.1f}" for i, v in enumerate(eq))
    y0 = _scale(0.0, lo, hi, H - PAD, 20)
    parts.append(f'<line x1="{PAD}" y1="{y0:.1f}" x2="{W - 10}" y2="{y0:.1f}" stroke="#bbb" stroke-dasharray="4"/>')
    parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>')
    parts.append("</svg>")
    return "".join(parts)


def calibration_svg(bins: Sequence[dict[str, Any]], title: str) -> str:
    parts = _axes(title, "predicted (confidence)", "realised hit rate", 0.0, 1.0)
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="20" stroke="#bbb" stroke-dasharray="4"/>')
    nmax = max([b["n"] for b in bins] or [1])
    for b in bins:
        if b.get("predicted") is None or b.get("realised") is None:
            continue
        x = _scale(b["predicted"], 0, 1, PAD, W - 10)
        y = _scale(b["realised"], 0, 1, H - PAD, 20)
        r = 3 + 7 * math.sqrt(b["n"] / nmax)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#d62728" fill-opacity="0.6">'
            f"<title>n={b['n']}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values: Sequence[float], title: str, bins: int = 20) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi == lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    cmax = max(counts) or 1
    parts = _axes(title, f"P&L % after fees ({_fmt(lo, 1)} .. {_fmt(hi, 1)})", "trades", 0.0, float(cmax))
    bw = (W - 10 - PAD) / bins
    for i, c in enumerate(counts):
        h = _scale(c, 0, cmax, 0, H - PAD - 20)
        mid = lo + (i + 0.5) * (hi - lo) / bins
        color = "#2ca02c" if mid > 0 else "#d62728"
        parts.append(
            f'<rect x="{PAD + i * bw:.1f}" y="{H - PAD - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{c}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(counts: dict[str, int], title: str) -> str:
    cmax = max(counts.values() or [1]) or 1
    parts = _axes(title, "exit reason", "trades", 0.0, float(cmax))
    n = max(1, len(counts))
    bw = (W - 10 - PAD) / n
    for i, (k, c) in enumerate(counts.items()):
        h = _scale(c, 0, cmax, 0, H - PAD - 20)
        x = PAD + i * bw
        parts.append(
            f'<rect x="{x + 4:.1f}" y="{H - PAD - h:.1f}" width="{bw - 8:.1f}" height="{h:.1f}" fill="#9467bd"/>'
        )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{H - PAD + 12}" text-anchor="middle" font-size="10">{_esc(k)} ({c})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


ROW_COLS = (
    "priced_from",
    "n",
    "signals",
    "fills",
    "hit_rate",
    "hit_rate_ci",
    "win_rate",
    "expectancy_pct",
    "median_pnl_pct",
    "profit_factor",
    "max_drawdown_usd",
    "mean_minutes_in_trade",
)


def render(report: dict[str, Any]) -> str:
    """The HTML document for a report dictionary from :func:`aiots.services.backtest.api.build_report`."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>AI-OTS backtest</title>",
        "<style>body{font-family:sans-serif;margin:20px;max-width:1200px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;text-align:right}th{background:#f3f3f3}"
        "svg{border:1px solid #eee;margin:4px}h2{margin-top:28px}</style></head><body>",
        "<h1>AI-OTS backtest</h1>",
        f"<p>Inputs: {_esc(', '.join(report['inputs']['bars']))}; option quotes: "
        f"{_esc(', '.join(report['inputs']['option_quotes']) or 'none (modelled premiums)')}; "
        f"seed {report['inputs']['seed']}.</p>",
        f"<p>Fills at the ask, exits at the bid, ${report['settings']['fee_per_contract']} per contract per leg; "
        f"quotes older than {report['settings']['max_quote_age_s']:.0f} s are not used. Hit = TARGET exit. "
        f"Selection filters skipped: {_esc(', '.join(report['data']['filters_skipped']))} "
        "(no per-minute open interest or volume).</p>",
    ]
    skipped = report["data"].get("ideas_without_contract") or {}
    if skipped:
        out.append("<h2>Ideas that found no contract (the engine's reasons)</h2>")
        out.append(_table([{"reason": k, "ideas": v} for k, v in sorted(skipped.items())], ("reason", "ideas")))
    if not report["summary"]:
        out.append("<p><b>No signal in this run.</b></p>")
    for pf, summ in report["summary"].items():
        trades = [t for t in report["trades"] if t["priced_from"] == pf]
        out.append(f"<h2>Priced from {_esc(pf)}</h2>")
        out.append(_table([{"priced_from": pf, **summ}], ROW_COLS))
        out.append(
            equity_svg(
                [t["pnl_usd"] or 0.0 for t in sorted(trades, key=lambda t: t["exit_time"])],
                f"Equity, one contract per signal ({pf})",
            )
        )
        cal = report["calibration_by_priced_from"].get(pf, {})
        out.append(
            calibration_svg(
                cal.get("bins", []),
                f"Calibration ({pf}): Brier {_fmt(cal.get('brier'), 3)}, ECE {_fmt(cal.get('ece'), 3)}",
            )
        )
        out.append(histogram_svg([t["pnl_pct"] for t in trades], f"P&L histogram ({pf})"))
        out.append(bars_svg(summ["exits_by_reason"], f"Exits by reason ({pf})"))
        nm = report["null_model_by_priced_from"].get(pf)
        if nm:
            out.append("<h3>Against the null model</h3>")
            out.append(
                _table(
                    [{"strategy": "all", **nm}, *nm.get("by_strategy", [])],
                    ("strategy", "n", "expectancy_pct", "strategy_expectancy_pct", "difference_pct", "difference_ci"),
                )
            )
        out.append("<h3>Calibration bins</h3>")
        out.append(_table(cal.get("bins", []), ("lo", "hi", "n", "predicted", "realised", "realised_ci")))
    out.append("<h2>By strategy</h2>")
    out.append(_table(report["by_strategy"], ("strategy", *ROW_COLS)))
    out.append("<h2>By symbol</h2>")
    out.append(_table(report["by_symbol"], ("symbol", *ROW_COLS)))
    out.append("<h2>Trades</h2>")
    out.append(
        _table(
            report["trades"],
            (
                "signal_id",
                "strategy",
                "contract",
                "direction",
                "entry_time",
                "entry_price",
                "exit_time",
                "exit_price",
                "exit_reason",
                "pnl_pct",
                "confidence",
                "priced_from",
            ),
        )
    )
    out.append("</body></html>")
    return "\n".join(out)
