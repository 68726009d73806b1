"""Refit the signals' confidence calibration on a backtest's closed trades, walk-forward by date.

The trades are ordered by signal time and cut into consecutive blocks of whole sessions; each block
is predicted by a logistic fit on the blocks before it
(:func:`aiots.services.signals.calibration.walk_forward`), so the Brier score, ECE and reliability
table reported here are out of sample. The reference forecast is the climatology: the hit rate of the
training blocks. The artifact is then fitted on every trade and carries that out-of-sample result and
its data window. Trades priced from real quotes and from modelled premiums are never pooled: the fit
uses the report's primary kind.

The model's inputs are what the engine knew at the decision, rebuilt from each trade row exactly as
the live selector builds them (:class:`~aiots.services.signals.calibration.Context`): ``p_model``, the
strategy's evidence, the strategy, the quoted spread over the mid, the net reward:risk after fees and
the regular-session minutes of the horizon.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from aiots.core.conventions import CONTRACT_MULTIPLIER, calendar, datetime_to_ns
from aiots.core.stats import Calibration
from aiots.services.signals.calibration import MIN_FIT_OUTCOMES, Calibrator, Context, walk_forward

FOLDS = 5
DEFAULT_FEE_PER_CONTRACT = 0.65


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _table(c: Calibration) -> dict[str, Any]:
    return {
        "brier": _num(c.brier),
        "brier_base_rate": _num(c.brier_base_rate),
        "ece": _num(c.ece),
        "base_rate": _num(c.base_rate),
        "bins": [
            {"lo": b.lo, "hi": b.hi, "predicted": _num(b.predicted), "realised": _num(b.realised), "n": b.count}
            for b in c.bins
        ],
    }


def _f(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and math.isfinite(float(x)) else math.nan


def context_of(trade: dict[str, Any], fee_per_contract: float = DEFAULT_FEE_PER_CONTRACT) -> Context:
    """The decision's :class:`Context` from a report's trade row (prices per share, fees per contract)."""
    bid, ask = _f(trade.get("bid_at_entry")), _f(trade.get("ask_at_entry"))
    mid = 0.5 * (bid + ask)
    spread = (ask - bid) / mid if mid > 0 else math.nan
    fee = fee_per_contract / CONTRACT_MULTIPLIER
    entry = _f(trade.get("signal_entry_mid"))  # the signal's entry price: the ask it was decided at
    target, stop = _f(trade.get("target_price")), _f(trade.get("stop_price"))
    cost = entry + fee
    gain, loss = target - fee - cost, cost - (stop - fee)
    rr = gain / loss if loss > 0 else math.nan
    minutes = math.nan
    created, horizon = trade.get("created_at"), trade.get("horizon_at")
    if isinstance(created, str) and isinstance(horizon, str):
        a = datetime_to_ns(dt.datetime.fromisoformat(created))
        b = datetime_to_ns(dt.datetime.fromisoformat(horizon))
        minutes = calendar().regular_ns_between(a, b) / 60e9
    return Context(str(trade.get("strategy") or ""), spread, rr, minutes)


def refit_calibration(report: dict[str, Any], folds: int = FOLDS) -> tuple[dict[str, Any], Calibrator | None]:
    """(the report section, the artifact or None when there are too few trades to fit)."""
    kinds = [k for k in ("quotes", "modelled") if any(t["priced_from"] == k for t in report["trades"])]
    kind = kinds[0] if kinds else report.get("calibration", {}).get("priced_from", "modelled")
    trades = [
        t
        for t in report["trades"]
        if t["priced_from"] == kind and t.get("p_model") is not None and t.get("exit_reason") is not None
    ]
    out: dict[str, Any] = {"priced_from": kind, "n": len(trades), "folds": folds}
    if len(trades) < MIN_FIT_OUTCOMES:
        out["note"] = f"only {len(trades)} closed trades (a fit needs {MIN_FIT_OUTCOMES}): no artifact written"
        return out, None
    fee = float(report.get("settings", {}).get("fee_per_contract", DEFAULT_FEE_PER_CONTRACT))
    times = [t["created_at"] for t in trades]
    hits = [1.0 if t["exit_reason"] == "TARGET" else 0.0 for t in trades]
    ctx = [context_of(t, fee) for t in trades]
    pm = [t["p_model"] for t in trades]
    ev = [t.get("evidence") or 0.0 for t in trades]
    wf = walk_forward(times, pm, ev, hits, folds, contexts=ctx, seed=int(report.get("inputs", {}).get("seed", 0)))
    out.update(_table(wf.calibration))
    out["n_oos"] = int(wf.outcome.size)
    out["brier_climatology"] = _num(wf.brier_climatology)
    out["skill"] = _num(wf.brier_climatology - wf.calibration.brier)
    out["skill_ci"] = [_num(wf.skill_ci[0]), _num(wf.skill_ci[1])]
    out["raw_brier"] = _num(wf.raw_calibration.brier)
    out["raw_ece"] = _num(wf.raw_calibration.ece)
    # the version-1 model (p_model and evidence only) on the same blocks, for comparison (not chosen by it)
    v1 = walk_forward(times, pm, ev, hits, folds)
    out["p_model_and_evidence_only_brier"] = _num(v1.calibration.brier)
    skill = wf.calibration.brier < wf.brier_climatology
    significant = skill and wf.skill_ci[0] > 0
    out["note"] = (
        "out-of-sample Brier below the climatological base rate, the 95% interval excludes 0: skill"
        if significant
        else "out-of-sample Brier below the climatological base rate, but the 95% interval includes 0"
        if skill
        else "out-of-sample Brier not below the climatological base rate: no skill shown on this sample"
    )
    dates = sorted({str(t)[:10] for t in times})
    symbols = sorted({str(t.get("symbol", "")) for t in trades})
    source = (
        f"{len(trades)} {kind} backtest outcomes over {len(dates)} sessions ({dates[0]}..{dates[-1]}) "
        f"of {','.join(symbols)}; hit = TARGET exit; walk-forward by date, {folds} blocks"
    )
    final = Calibrator(**{**wf.final.__dict__, "source": source}) if not wf.final.identity else wf.final
    out["artifact"] = {
        "intercept": wf.final.intercept,
        "logit_p_model": wf.final.logit_p_model,
        "evidence": wf.final.evidence,
        "extra": {k: list(v) for k, v in wf.final.extra.items()},
        "window": [wf.final.window_start, wf.final.window_end],
        "source": source,
    }
    return out, (None if final.identity else final)
